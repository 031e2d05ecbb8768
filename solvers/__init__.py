"""Samplers with the k-diffusion contract (pure torch): reference samplers in classic.py, TADA in tada.py."""
