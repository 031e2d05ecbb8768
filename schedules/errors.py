"""The one error type of the schedule core.

Every message names the offending input, says what is wrong with it and how to fix it, so a node can show it
to the artist unchanged.
"""
from __future__ import annotations


class ScheduleError(ValueError):
    """A schedule, model kind, schedule file or parameter that cannot be used; the message says why and how
    to fix it."""
