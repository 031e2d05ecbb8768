"""Benchmarks and the standalone jobs (no ComfyUI needed).

* ``run`` — the harness: sampler × schedule × NFE × seeds on the CPU testbeds → JSON + markdown (``--preset readme``).
* ``cli`` — the ``schedule-lab`` console script (``compare``, ``bench``); ``compare`` — the A/B grid job.
* ``methods`` — what a row runs (ours, registry, diffusers, ComfyUI) and NFE-matched step counts.
* ``peers`` — diffusers schedulers driven by a k-diffusion denoiser on our sigma lists.
* ``comfy_worker`` — ComfyUI's samplers in a subprocess when COMFYUI_PATH is set.
* ``setups`` — the testbeds as benchmarked (model, sigma range, split scored against); ``report`` — markdown.
"""
