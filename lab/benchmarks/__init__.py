"""Benchmarks (no ComfyUI needed); every cell is one ``solvers.catalogue.run``.

* ``run`` — the harness: sampler × schedule × NFE × seeds on the CPU testbeds → JSON + markdown (``--preset readme``).
* ``evaluate`` — the one evaluation every benchmark shares (``evaluate``; ``ScheduleScore`` for searched lists).
* ``methods`` — what a row runs (catalogue samplers and schedules, diffusers, ComfyUI) and NFE-matched step counts.
* ``report`` — markdown and the one results writer (``write_results``); ``setups`` — the testbeds as benchmarked
  and the shared command-line options.
* ``peers`` — diffusers schedulers driven by a k-diffusion denoiser on our sigma lists.
* ``comfy_worker`` — ComfyUI's samplers in a subprocess when COMFYUI_PATH is set (``_bootstrap`` lets that
  interpreter import the pack).
* method studies: ``constant_rate_bench``, ``search_bench``, ``refine_gradient_bench``, ``tada_defaults``,
  ``tada_overhead`` (``tada_targets`` reads TADA's targets off the harness's rows).
The ``schedule-lab compare`` job lives in ``lab/cli/``.
"""
