"""The lab: research code beside the pack, never loaded by ComfyUI (``schedule_lab.lab``).

testbeds    CPU testbeds: closed-form and exact denoisers, the bundled small models (``testbeds/weights``), metrics
benchmarks  the harness (``python -m schedule_lab.lab.benchmarks.run``), per-method studies, ``results/``
defaults    the defaults study that produced the pack's shipped defaults (``lab/defaults/``, docs/defaults.md)
tpdm        TPDM's RL trainer and its command (``schedule-lab tpdm train``)
cli         the ``schedule-lab`` command (``compare``, ``bench``, ``tpdm train``)
tools       the example-workflow and thumbnail builders

The lab imports the pack by absolute names (``from schedule_lab.schedules import ...``) and only its public names;
the pack never imports the lab (``tests/unit/test_pack_lab_split.py``).
"""
