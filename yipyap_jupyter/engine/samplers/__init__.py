"""What every family's sampler shares: the program protocol, the selection rule, noise, the block schedule."""
