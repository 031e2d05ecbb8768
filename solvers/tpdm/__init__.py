"""TPDM (Schedule On the Fly, arXiv 2412.01243): the time predictor, the adaptive-steps sampler and weight loading.

Core only (no ComfyUI). ``tpm``: :class:`TimePredictor`, :class:`TPMFeatures`; ``sampler``: :func:`sample_tpdm`;
``official``: ``.safetensors`` loading/saving. Decisions and measurements in docs/tpdm.md.
"""
from .official import load_official_tpm, load_tpm, save_tpm
from .sampler import DEFAULT_MAX_STEPS, DEFAULT_MIN_SIGMA, sample_tpdm
from .tpm import TimePredictor, TPMFeatures, official_sd3_tpm, tokens_to_2d, tpm_for_features

__all__ = [
    "DEFAULT_MAX_STEPS", "DEFAULT_MIN_SIGMA", "TPMFeatures", "TimePredictor", "load_official_tpm", "load_tpm",
    "official_sd3_tpm", "sample_tpdm", "save_tpm", "tokens_to_2d", "tpm_for_features",
]
