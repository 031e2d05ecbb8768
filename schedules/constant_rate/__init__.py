"""Constant-rate schedules: construction from a velocity, measured velocities and their disk cache."""
