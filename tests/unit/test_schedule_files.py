"""Schedule files: versioned, hashed JSON; atomic saves; safe names; carrying a schedule to another model."""
from __future__ import annotations

import json
import os

import pytest
import torch

from schedule_lab.schedules import (
    ModelKind,
    ScheduleError,
    adapt_to_kind,
    convert_sigmas,
    doc_hash,
    dumps,
    karras,
    load_schedule,
    loads,
    make_schedule_doc,
    safe_schedule_name,
    save_schedule,
)

SD1 = ModelKind.vp("eps")
FLOW = ModelKind.flow(shift=3.0)


def _doc(sigmas=None, kind=SD1, **kw):
    sigmas = karras(10, kind.sigma_min, kind.sigma_max) if sigmas is None else sigmas
    return make_schedule_doc(sigmas, kind, "karras", {"rho": 7.0}, "0.1.0", **kw)


def _rehash(doc):
    doc = dict(doc)
    doc["sha256"] = doc_hash(doc)
    return doc


def test_document_has_the_documented_fields():
    doc = _doc(created="2026-01-01T00:00:00+00:00")
    assert doc["format"] == "schedule-lab/schedule" and doc["version"] == 1 and doc["split"] is False
    assert doc["model"] == SD1.to_dict()
    assert doc["provenance"] == {"method": "karras", "params": {"rho": 7.0}, "pack_version": "0.1.0",
                                 "created": "2026-01-01T00:00:00+00:00"}
    assert doc["sha256"] == doc_hash(doc) and len(doc["sha256"]) == 64


def test_created_defaults_to_an_iso_utc_time():
    assert _doc()["provenance"]["created"].endswith("+00:00")


def test_text_round_trip_is_exact():
    doc = _doc()
    assert loads(dumps(doc)) == doc


def test_file_round_trip_is_exact(tmp_path):
    doc = _doc()
    path = save_schedule(tmp_path / "a.json", doc)
    assert load_schedule(path) == doc
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_split_schedules_round_trip():
    doc = _doc(torch.tensor([14.0, 5.0, 2.0]), split=True)
    assert loads(dumps(doc))["split"] is True


def test_hash_does_not_depend_on_layout():
    doc = _doc()
    compact = json.dumps(doc, separators=(",", ":"))
    assert loads(compact) == doc


def test_a_changed_sigma_is_detected(tmp_path):
    doc = _doc()
    doc = {**doc, "sigmas": [doc["sigmas"][0] * 1.01] + doc["sigmas"][1:]}
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with pytest.raises(ScheduleError, match="changed after it was saved"):
        load_schedule(tmp_path / "t.json")


def test_a_changed_provenance_is_detected():
    doc = _doc()
    doc["provenance"] = {**doc["provenance"], "method": "ays"}
    with pytest.raises(ScheduleError, match="sha256"):
        loads(json.dumps(doc))


def test_a_newer_version_asks_to_update_the_pack():
    with pytest.raises(ScheduleError, match="update the Schedule Lab pack"):
        loads(json.dumps(_rehash({**_doc(), "version": 2})))


@pytest.mark.parametrize("change, problem", [
    ({"format": "other"}, "format"),
    ({"version": "1"}, "version"),
    ({"split": "no"}, "split"),
    ({"sigmas": [1.0, 2.0, 0.0]}, "descending"),
    ({"sigmas": ["a", 0.0]}, "list of numbers"),
    ({"provenance": "karras"}, "provenance"),
    ({"model": {"kind": "ddpm", "sigma_min": 1, "sigma_max": 2}}, "kind"),
])
def test_malformed_documents_are_refused(change, problem):
    with pytest.raises(ScheduleError, match=problem):
        loads(json.dumps(_rehash({**_doc(), **change})))


def test_missing_fields_are_named():
    doc = _doc()
    del doc["model"]
    with pytest.raises(ScheduleError, match="lacks model"):
        loads(json.dumps(doc))


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "schedule-lab/sched')
    with pytest.raises(ScheduleError, match="broken.json.*not valid JSON"):
        load_schedule(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ScheduleError, match="nothere.json.*does not exist"):
        load_schedule(tmp_path / "nothere.json")


def test_make_refuses_invalid_sigmas_and_unsafe_params():
    with pytest.raises(ScheduleError, match="descending"):
        _doc(torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ScheduleError, match="JSON-safe"):
        make_schedule_doc(karras(4, 0.1, 10.0), SD1, "karras", {"x": torch.ones(2)}, "0.1.0")
    with pytest.raises(ScheduleError, match="JSON-safe"):
        make_schedule_doc(karras(4, 0.1, 10.0), SD1, "karras", {"x": float("nan")}, "0.1.0")


def test_a_failed_replace_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_schedule(path, _doc())
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(ScheduleError, match="'s.json' cannot be written \\(disk full\\)"):
        save_schedule(path, _doc(karras(20, SD1.sigma_min, SD1.sigma_max)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_a_failed_write_creates_no_file(tmp_path, monkeypatch):
    def boom(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(ScheduleError, match="'new.json' cannot be written \\(I/O error\\)"):
        save_schedule(tmp_path / "new.json", _doc())
    assert list(tmp_path.iterdir()) == []


def test_saving_into_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(ScheduleError, match="does not exist"):
        save_schedule(tmp_path / "no" / "s.json", _doc())


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a\\b", "..", "../up", "x..y", "/etc/passwd", "C:\\x",
                                  "C:x", "a\x00b", "a\nb", ".hidden", None])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ScheduleError, match="schedule name"):
        safe_schedule_name(name)


@pytest.mark.parametrize("name, expected", [("my sd15", "my sd15.json"), ("ays_12.json", "ays_12.json"),
                                            ("  x-y  ", "x-y.json"), ("A.JSON", "A.JSON")])
def test_safe_names_get_a_json_suffix(name, expected):
    assert safe_schedule_name(name) == expected


def test_same_kind_in_range_keeps_the_sigmas_bit_for_bit():
    doc = _doc()
    assert adapt_to_kind(doc, SD1).tolist() == doc["sigmas"]


def test_vp_schedule_on_a_v_model_is_unchanged():
    doc = _doc()
    assert adapt_to_kind(doc, ModelKind.vp("v")).tolist() == doc["sigmas"]


def test_vp_schedule_on_a_flow_model_is_converted_through_lambda():
    doc = _doc()
    out = adapt_to_kind(doc, FLOW)
    s = torch.tensor(doc["sigmas"], dtype=torch.float64)
    assert torch.equal(out, convert_sigmas(s, SD1, FLOW))
    assert torch.allclose(FLOW.to_lambda(out[:-1]), SD1.to_lambda(s[:-1]), rtol=1e-12)


def test_flow_schedule_on_a_vp_model_needs_clamping():
    doc = _doc(karras(8, 0.05, 1.0), kind=FLOW)  # only its top (pure noise, s = 1) lies beyond SD1
    with pytest.raises(ScheduleError, match="does not fit"):
        adapt_to_kind(doc, SD1)
    out = adapt_to_kind(doc, SD1, clamp=True)
    assert out[0].item() == SD1.sigma_max and out[-1] == 0 and bool((out[1:] < out[:-1]).all())


def test_flow_schedule_below_the_table_end_loads_unchanged_on_a_flow_model_only():
    sigmas = torch.tensor([1.0, 0.4, 0.05, 0.0021, 0.0009, 0.0], dtype=torch.float64)  # a frozen TPDM stop
    doc = _doc(sigmas, kind=FLOW)
    assert FLOW.sigma_min > 0.0029  # 0.0021 and 0.0009 lie below SD3's table end, on its continuous time
    assert adapt_to_kind(doc, FLOW).tolist() == doc["sigmas"]
    assert adapt_to_kind(doc, ModelKind.flow(shift=1.0)).tolist() == doc["sigmas"]
    with pytest.raises(ScheduleError, match="does not fit"):  # a discrete model has no timestep there
        adapt_to_kind(_doc(torch.tensor([14.0, 1.0, 0.02, 0.0], dtype=torch.float64)), SD1)


def test_edm_schedule_beyond_the_vp_range_is_refused_and_merging_clamps_too():
    edm = ModelKind.edm(0.002, 80.0)
    doc = _doc(karras(10, 0.002, 80.0), kind=edm)
    with pytest.raises(ScheduleError, match="clamp=True"):
        adapt_to_kind(doc, SD1)
    with pytest.raises(ScheduleError, match="merge"):
        adapt_to_kind(doc, SD1, clamp=True)
