"""Run inside a fresh ComfyUI process (cwd = ComfyUI root): exercise the host adapter's registration
against the real ``comfy.samplers`` module and print a JSON report for the test to check.

Usage: python registration_probe.py <pack root>
"""
from __future__ import annotations

import importlib.util
import json
import logging
import sys

pack_root = sys.argv[1]
sys.argv = [sys.argv[0], "--cpu"]
sys.path.insert(0, ".")
import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()
import comfy.samplers as S  # noqa: E402

spec = importlib.util.spec_from_file_location("schedule_lab", f"{pack_root}/__init__.py",
                                              submodule_search_locations=[pack_root])
# Import the core and the adapter without the entry point's side effects: register by hand below.
pkg = importlib.util.module_from_spec(spec)
pkg.__path__ = [pack_root]
sys.modules["schedule_lab"] = pkg
from schedule_lab.nodes import host  # noqa: E402
from schedule_lab.schedules import catalogue as schedule_table  # noqa: E402
from schedule_lab.solvers import catalogue  # noqa: E402

records = []
logging.getLogger().addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: records.append(
    r.getMessage())})())

ids = {"SCHEDULER_NAMES": id(S.SCHEDULER_NAMES), "SAMPLER_NAMES": id(S.SAMPLER_NAMES),
       "KSAMPLER_NAMES": id(S.KSAMPLER_NAMES), "KSampler.SCHEDULERS": id(S.KSampler.SCHEDULERS)}
stock = {"schedulers": list(S.SCHEDULER_NAMES), "samplers": list(S.SAMPLER_NAMES)}


def euler_probe(model, x, sigmas, extra_args=None, callback=None, disable=None, kind=None):
    extra_args = extra_args or {}
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **extra_args)
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


catalogue.SAMPLERS["sl_probe_euler"] = catalogue.Sampler(euler_probe, "probe")  # one entry in the sampler table
probe = ["sl_probe_euler"]
first = {"schedulers": host.register_schedulers(), "samplers": host.register_samplers(probe)}
second = {"schedulers": host.register_schedulers(), "samplers": host.register_samplers(probe)}
after = {"schedulers": list(S.SCHEDULER_NAMES), "samplers": list(S.SAMPLER_NAMES)}
same_objects = ids == {"SCHEDULER_NAMES": id(S.SCHEDULER_NAMES), "SAMPLER_NAMES": id(S.SAMPLER_NAMES),
                       "KSAMPLER_NAMES": id(S.KSAMPLER_NAMES), "KSampler.SCHEDULERS": id(S.KSampler.SCHEDULERS)}
resolved = S.sampler_object("sl_probe_euler").sampler_function.schedule_lab_entry.fn is euler_probe

import comfy.model_sampling as MS  # noqa: E402
import torch  # noqa: E402


class _Eps(MS.ModelSamplingDiscrete, MS.EPS):
    pass


sig = S.calculate_sigmas(_Eps(), "sl_ays_sd1", 10)

# Version drift: a host without SchedulerHandler must log one warning and raise nothing.
saved = S.SchedulerHandler
del S.SchedulerHandler
host._warned.clear()
schedule_table.SCHEDULES["sl_drift"] = schedule_table.SCHEDULES["sl_ays_sd1"]
drift = host.register_schedulers(["sl_drift"])
drift2 = host.register_schedulers(["sl_drift"])
S.SchedulerHandler = saved
print("@@" + json.dumps({
    "stock": stock, "after": after, "first": first, "second": second, "same_objects": same_objects,
    "resolved": resolved, "sigmas": sig.tolist(), "drift": drift + drift2,
    "drift_warnings": [r for r in records if "SchedulerHandler" in r],
    "tensor_dtype": str(sig.dtype), "finite": bool(torch.isfinite(sig).all()),
}))
