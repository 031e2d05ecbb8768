"""TPDM (placeholder until the tpdm branch lands; rl and train are the trainer)."""
