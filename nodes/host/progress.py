"""Progress bars, Cancel and text on a node, for long work outside the sampler loop."""
from __future__ import annotations

from .access import load, log, warn_once


class Progress:
    """A ComfyUI progress bar that also honours Cancel; a no-op outside ComfyUI."""

    def __init__(self, total: int):
        utils = load("comfy.utils")
        self._bar = utils.ProgressBar(total) if utils and hasattr(utils, "ProgressBar") else None
        mm = load("comfy.model_management")
        self._check_cancel = getattr(mm, "throw_exception_if_processing_interrupted", None)

    def step(self, n: int = 1) -> None:
        if self._check_cancel is not None:
            self._check_cancel()  # raises when the user pressed Cancel
        if self._bar is not None:
            self._bar.update(n)


def check_interrupted() -> None:
    """Raise ComfyUI's interruption if the user pressed Cancel (the ``should_stop`` hook the core calls before every
    model call); a no-op outside ComfyUI or where the host lacks the check."""
    mm = load("comfy.model_management")
    check = getattr(mm, "throw_exception_if_processing_interrupted", None)
    if check is None:
        warn_once("interrupt", "this ComfyUI has no throw_exception_if_processing_interrupted; Cancel takes effect "
                  "only between progress steps of Schedule Lab's long work")
        return
    check()


def show_text(node_id: str | None, text: str) -> None:
    """Show ``text`` on a node in the UI (ComfyUI's progress-text event) and log it."""
    log.info("[Schedule Lab] %s", text)
    server = load("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is not None and node_id is not None and hasattr(instance, "send_progress_text"):
        instance.send_progress_text(text, node_id)
