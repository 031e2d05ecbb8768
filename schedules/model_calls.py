"""The one model-call counter: wraps a k-diffusion model, counts its calls and per-sample evaluations.

Used by the catalogue's ``run`` (a cell's NFE), the timestep search (reference, fitness, refinement) and the lab
(benchmarks, testbeds). It lives in the lowest layer that calls models so that schedules/ and solvers/ share it.
"""
from __future__ import annotations

__all__ = ["CountedModel"]


class CountedModel:
    """Counts model calls (``calls``: one per call, whatever the batch) and per-sample evaluations (``samples``, the
    sum of the batch sizes); ``reset()`` sets both back to 0.

    Any other attribute is the wrapped model's: ComfyUI's SDE samplers read ``model.inner_model`` (the model
    sampling and patcher behind the k-diffusion denoiser), pack samplers find the model kind there, and the lab's
    reference cache reads ``cache_key``. ``should_stop()`` (if given) is asked before every model call and may raise
    to cancel within one call.
    """

    def __init__(self, model, should_stop=None):
        self.model, self.calls, self.samples, self.should_stop = model, 0, 0, should_stop

    def __getattr__(self, name):
        if name in ("model", "calls", "samples", "should_stop"):  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, x, sigma, **kw):
        if self.should_stop is not None:
            self.should_stop()
        self.calls += 1
        self.samples += x.shape[0]
        return self.model(x, sigma, **kw)

    def reset(self) -> None:
        self.calls = self.samples = 0
