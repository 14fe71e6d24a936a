"""Samplers: LLaDA masked diffusion, Dream's algorithms, fixed and variable-length infilling."""
