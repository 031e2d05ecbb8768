"""The search's settings per step count, chosen by the defaults rule (docs/defaults.md §3b).

Produced by ``python -m schedule_lab.lab.defaults.search`` (``lab/benchmarks/results/defaults_search.json``;
``tests/unit/test_defaults_suite.py`` checks this table equals it): for each NFE, the optimiser and starting list
whose searched DPM-Solver++(2M) list had the lowest worst ratio to ``dpmpp_2m`` + ``karras`` (sliced W2 and RMSE
to the converged ODE) over the nine tuning testbeds. The candidates:

* ``("evolution", "uniform")`` — the evolutionary search with the Timestep Search node's defaults (population 16 ×
  8 generations; its first population is seeded from the uniform and the Karras lists);
* ``("refine", "karras")`` — finite-difference refinement (20 iterations, lr 0.2, 32 samples a step) of the Karras
  list;
* ``("refine", "constant_rate")`` — the same refinement started from ``sl_constant_rate``'s list at that step count
  (the search *initialised from the constant-rate list*).

Step counts between grid points use the setting of the nearest grid NFE below (below 4: the 4 setting, above 20:
the 20 setting, the largest step count the study measured). At 15 and 20 no setting beats the stock default in
the worst case (1.15× and 1.31×): the rule still picks the least bad, and searching pays at 4–8 steps.
"""
from __future__ import annotations

__all__ = ["INITS", "OPTIMISERS", "SETTINGS_BY_NFE", "default_search_settings"]

OPTIMISERS = ("evolution", "refine")
INITS = ("uniform", "karras", "constant_rate")

#: NFE → (optimiser, initial list). Copied from lab/benchmarks/results/defaults_search.json, written by
#: ``python -m schedule_lab.lab.defaults.search`` (the rule of docs/defaults.md §3b).
SETTINGS_BY_NFE = {4: ("evolution", "uniform"), 5: ("evolution", "uniform"), 6: ("evolution", "uniform"),
                   8: ("refine", "constant_rate"), 10: ("refine", "constant_rate"), 15: ("refine", "constant_rate"),
                   20: ("evolution", "uniform")}


def default_search_settings(nfe: int) -> tuple[str, str]:
    """(optimiser, initial list) for a search of ``nfe`` steps (SETTINGS_BY_NFE, nearest grid NFE below)."""
    grid = sorted(SETTINGS_BY_NFE)
    below = [n for n in grid if n <= int(nfe)]
    return SETTINGS_BY_NFE[below[-1] if below else grid[0]]
