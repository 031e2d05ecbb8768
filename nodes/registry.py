"""Which catalogue names the pack adds to ComfyUI's KSampler dropdowns, in the order they are appended.

Only names: each method is declared once, in its table (``schedules/catalogue.py`` SCHEDULES, ``solvers/catalogue.py``
SAMPLERS), with its function, defaults, needs and flags; ``nodes/host/registration.py`` appends these names to the
stock lists and binds them through the catalogue (``schedule_sigmas`` / ``bind_sampler``). A leaf: imports nothing.

Names are permanent workflow identity (saved workflows store them as strings): never rename one. All carry the
``sl_`` prefix because other packs append to the same lists.
"""
from __future__ import annotations

DROPDOWN_SCHEDULERS = ("sl_ays_sd1", "sl_ays_sdxl", "sl_searched", "sl_constant_rate")
DROPDOWN_SAMPLERS = ("sl_tada", "sl_tpdm")
