"""Generated malformed files through the hardened reader, at unit speed (no host): schedule files, search states,
calibration records and names. Seeded (derandomised), so CI sees the same cases each run; the count per property is
``max_examples`` (SCHEDULE_CASES + STATE_CASES + RECORD_CASES + NAME_CASES in all).

Property for every case: the reader either accepts the file (and then everything the pack computes from it works or
raises ScheduleError) or raises ScheduleError naming the file by its name, never its folder, in well under a
second; nothing else escapes (no RecursionError, OverflowError, ValueError of int(), MemoryError, KeyError...)."""
from __future__ import annotations

import json
import os
import string
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from malformed import KINDS, malformed_text

from schedule_lab.schedules import ScheduleError, load_schedule
from schedule_lab.schedules.constant_rate.cache import cache_key, load_velocity, save_velocity
from schedule_lab.schedules.constant_rate.construct import default_velocity
from schedule_lab.schedules.files import adapt_to_kind, doc_kind, doc_sigmas, safe_schedule_name, save_schedule
from schedule_lab.schedules.search.evolution import EvolutionConfig, EvolutionSearch
from schedule_lab.schedules.search.genes import GeneSpace
from schedule_lab.schedules.search.results import check_search_params, searched_sigmas
from schedule_lab.schedules.search.state import load_state

SCHEDULE_CASES, STATE_CASES, RECORD_CASES, NAME_CASES = 200, 80, 60, 100
FAST = 1.0  # seconds: the 1e8-timesteps file took 11 s before the fix
COMMON = dict(derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
SD = KINDS["eps"]
FOLDER = Path(tempfile.mkdtemp(prefix="sl_faults_"))


def _named_not_located(message: str, name: str) -> None:
    assert repr(name) in message, message
    assert str(FOLDER) not in message, message


@settings(max_examples=SCHEDULE_CASES, **COMMON)
@given(text=malformed_text())
def test_a_generated_schedule_file_is_read_or_refused_by_name(text):
    path = FOLDER / "case.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    try:
        doc = check_search_params(load_schedule(path), "schedule file 'case.json'")
    except ScheduleError as e:
        _named_not_located(str(e), "case.json")
    else:  # accepted: every use of it works or refuses cleanly
        doc_sigmas(doc)
        for kind in KINDS.values():
            try:
                adapt_to_kind(doc, kind)
            except ScheduleError:
                pass
        doc_kind(doc).describe()
    assert time.perf_counter() - start < FAST
    # and the folder scan over it beside a sound file never fails because of it
    good = FOLDER / "good.json"
    if not good.exists():
        from malformed import sound_schedule

        save_schedule(good, sound_schedule("eps", 3, search=True))
    sigmas = searched_sigmas(SD, 3, [(n, str(FOLDER / n)) for n in ["case.json", "good.json"]])
    assert len(sigmas) == 4


def _state_doc(kind, steps, search):
    space = GeneSpace(SD)
    config = EvolutionConfig(population=4, top_k=1, mutations=2, crossovers=1, generations=2,
                             resample_noise=False).check()
    s = EvolutionSearch(space, max(2, min(steps, 5)), lambda sig, d: float(sig.sum()), config, seed=0, label="t")
    if search:
        s.run()
    return s.state_doc()


@settings(max_examples=STATE_CASES, **COMMON)
@given(text=malformed_text(make=_state_doc))
def test_a_generated_search_state_is_resumed_or_refused_by_name(text):
    path = FOLDER / "case.searchstate"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    try:
        doc = load_state(path)
        space = GeneSpace(SD)
        config = EvolutionConfig(population=4, top_k=1, mutations=2, crossovers=1, generations=2,
                                 resample_noise=False).check()
        search = EvolutionSearch(space, doc["nfe"] if 2 <= doc["nfe"] <= 5 else 3, lambda sig, d: float(sig.sum()),
                                 config, seed=0, label="t")
        search.restore(doc, source="search state 'case.searchstate'")
        search.run()  # a restored search finishes (never "until cancelled")
    except ScheduleError as e:
        _named_not_located(str(e), "case.searchstate")
    assert time.perf_counter() - start < FAST


def _record_doc(kind, steps, search):
    folder = Path(tempfile.mkdtemp(dir=FOLDER))
    key = cache_key("model", {"points": steps})
    save_velocity(folder, key, "model", {"points": steps}, default_velocity(KINDS[kind]))
    return json.loads((folder / f"{key}.json").read_text())


@settings(max_examples=RECORD_CASES, **COMMON)
@given(text=malformed_text(make=_record_doc))
def test_a_generated_calibration_record_is_a_hit_or_discarded(text):
    key = "a" * 40
    path = FOLDER / f"{key}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    velocity, status = load_velocity(FOLDER, key)  # never raises: a bad record is deleted and measured again
    assert time.perf_counter() - start < FAST
    assert (velocity is not None and status == "hit") or (velocity is None and status.startswith("corrupt"))
    assert path.exists() == (status == "hit")


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=260) | \
    st.text(alphabet=string.printable, max_size=40) | \
    st.sampled_from(["CON", "nul.json", "COM1", "LPT3.txt", "aux", "a?b", "<x>", "x" * 255, "..", "a/b", " x ."])


@settings(max_examples=NAME_CASES, **COMMON)
@given(name=names)
def test_a_generated_name_is_refused_or_portable_and_writable(name):
    try:
        file = safe_schedule_name(name)
    except ScheduleError as e:
        assert "schedule name" in str(e)
        return
    assert not any(c in file for c in '<>:"|?*/\\\x00') and not file.startswith(".")
    assert file.split(".")[0].strip().upper() not in {"CON", "PRN", "AUX", "NUL"}
    assert len(file.encode()) <= 205
    from malformed import sound_schedule

    path = FOLDER / "names" / file
    path.parent.mkdir(exist_ok=True)
    save_schedule(path, sound_schedule())
    assert load_schedule(path)["provenance"]["method"] == "manual"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)


@pytest.fixture(autouse=True, scope="module")
def _cleanup():
    yield
    import shutil

    shutil.rmtree(FOLDER, ignore_errors=True)
