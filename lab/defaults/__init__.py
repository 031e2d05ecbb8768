"""The defaults study: how the pack's shipped defaults were chosen (docs/defaults.md).

* ``bench`` — rows, row cache and ratios over the suite (``python -m schedule_lab.lab.defaults.bench``);
* ``searched`` — the searched timestep lists per testbed; ``search`` — the search settings' study;
* ``guard`` — checks that the shipped constants are the ones the study chose.
"""
