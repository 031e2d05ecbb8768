"""TPDM training, lab-only (ComfyUI never loads it): ``rl`` (RLOO-PPO pieces), ``trainer`` (the loop, any model, tap
and scorer) and ``train`` (the command ``schedule-lab tpdm train`` / ``python -m schedule_lab.lab.tpdm.train``)."""
