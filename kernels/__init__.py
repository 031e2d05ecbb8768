"""Shared hot math: the exact empirical denoiser, the Fréchet distance and the sliced Wasserstein distance."""
from .exact_denoiser import exact_denoise
from .frechet import frechet_distance, gaussian_stats
from .sliced_wasserstein import random_directions, sliced_wasserstein

__all__ = ["exact_denoise", "frechet_distance", "gaussian_stats", "random_directions", "sliced_wasserstein"]
