"""Searched timestep lists (AutoDiffusion): evolution, genes, fitnesses, LD3 refinement, state and result files."""
