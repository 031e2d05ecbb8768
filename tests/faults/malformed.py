"""Malformed files for the fault suite: hypothesis strategies (the generated cases) and a seeded plain generator
(the sample dropped into the real host's models/schedules). Each case starts from a sound file the pack wrote and
breaks it the way a shared file can be broken: a field replaced by any JSON value (huge or long numbers, deep
nesting, wrong types), a field removed, the text truncated or spliced, numbers JSON does not allow; the checksum is
recomputed half the time, since anyone can."""
from __future__ import annotations

import json
import random

import torch
from hypothesis import strategies as st

from schedule_lab.schedules.baseline import karras
from schedule_lab.schedules.files import doc_hash, dumps, make_schedule_doc
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.schedules.search.results import make_search_doc

KINDS = {"eps": ModelKind.vp(), "v": ModelKind.vp("v"), "edm": ModelKind.edm(), "flow": ModelKind.flow(shift=3.0)}

#: Values that broke the pack before the hardening (docs/testing.md, "Fault suite"), and their relatives.
NASTY_TEXT = ["9" * 4300, "1" * 400, "-" + "7" * 41, "1e999", "-1e999", "NaN", "Infinity", "-Infinity",
              "[" * 2000 + "]" * 2000, '{"a":' * 3000 + "0" + "}" * 3000, "1" + "0" * 60 + ".5", "1e-400",
              "10000000000", "100000000", '"' + "x" * 10000 + '"']


def sound_schedule(kind: str = "eps", steps: int = 4, search: bool = False) -> dict:
    k = KINDS[kind]
    sigmas = karras(steps, k.sigma_min, min(k.sigma_max, 0.999) if kind == "flow" else k.sigma_max)
    if search:
        return make_search_doc(sigmas, k, nfe=steps, sampler="euler", fitness="endpoint", best_fitness=0.1,
                               holdout_fitness=0.2, history=[{"generation": 0, "best_fitness": 0.1}],
                               pack_version="0.1.0")
    return make_schedule_doc(sigmas, k, "manual", {"note": "sound"}, "0.1.0")


def paths(value, prefix=()):
    """Every (path) inside a JSON value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]):  # a few entries of long lists are enough
            out += paths(v, prefix + (i,))
    return out


def replace(doc, path, new):
    if not path:
        return new
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = new
    return doc


def delete(doc, path):
    if not path:
        return {}
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return doc


def rehash(doc):
    if isinstance(doc, dict) and "sha256" in doc:
        try:
            doc = dict(doc, sha256=doc_hash(doc))
        except (TypeError, ValueError):
            pass
    return doc


# -- hypothesis strategies ------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20),
    st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=10**15, max_value=10**39),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0, -1, 0.0, 1e308, 5e-324, 10**10, 10**8]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)), max_leaves=20)


@st.composite
def malformed_text(draw, make=sound_schedule):
    """The text of a broken file, built from a sound document made by ``make(kind, steps, search)``."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    doc = make(kind, draw(st.integers(1, 12)), draw(st.booleans()))
    how = draw(st.sampled_from(["replace", "delete", "nasty", "truncate", "splice", "wrap"]))
    spots = paths(doc)
    path = draw(st.sampled_from(spots))
    if how == "replace":
        doc = replace(doc, path, draw(json_values))
    elif how == "delete" and path:
        doc = delete(doc, path)
    if draw(st.booleans()):
        doc = rehash(doc)
    text = json.dumps(doc)
    if how == "nasty":
        marker = "@@NASTY@@"
        text = json.dumps(replace(doc, path, marker) if path else marker).replace(f'"{marker}"',
                                                                                  draw(st.sampled_from(NASTY_TEXT)))
    elif how == "truncate":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif how == "splice":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(NASTY_TEXT + ["\x00", "}", "]", ",", '"', "\\"])) + text[at:]
    elif how == "wrap":
        depth = draw(st.integers(30, 5000))
        text = "[" * depth + text + "]" * depth
    return text


# -- the seeded plain generator (real-host sample) ------------------------------------------------------------------

def sample_files(n: int, seed: int = 10) -> dict[str, str]:
    """``n`` broken schedule files (name -> text), reproducible from ``seed``: a few of each kind of damage, all
    rehashed where possible so the checksum is no defence."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        doc = sound_schedule(rng.choice(sorted(KINDS)), rng.randint(2, 6), search=True)
        how = ["nasty", "type", "timesteps", "deep", "truncate", "params"][i % 6]
        spots = [p for p in paths(doc) if p]
        if how == "nasty":
            marker = "@@NASTY@@"
            text = json.dumps(replace(doc, rng.choice(spots), marker)).replace(f'"{marker}"', rng.choice(NASTY_TEXT))
        elif how == "type":
            text = json.dumps(rehash(replace(doc, rng.choice(spots), rng.choice([[1, 2], {"a": 1}, "x", None]))))
        elif how == "timesteps":
            model = doc["model"]
            if model["table"] is None:
                model = dict(KINDS["eps"].to_dict())
            model["table"] = dict(model["table"] or {}, type="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                  timesteps=rng.choice([10**8, 10**10, 10**12]))
            text = json.dumps(rehash(dict(doc, model=model)))
        elif how == "deep":
            text = json.dumps(rehash(replace(doc, ("provenance", "params", "history"),
                                             json.loads("[" * 500 + "]" * 500))))
        elif how == "truncate":
            full = json.dumps(doc)
            text = full[: rng.randint(1, len(full) - 1)]
        else:
            text = json.dumps(rehash(replace(doc, ("provenance", "params"), [1, 2, 3])))
        out[f"fault_{i:02d}_{how}.json"] = text
    return out


def good_search_text(steps: int) -> str:
    return dumps(sound_schedule("eps", steps, search=True))


__all__ = ["KINDS", "NASTY_TEXT", "good_search_text", "json_values", "malformed_text", "sample_files",
           "sound_schedule", "torch"]
