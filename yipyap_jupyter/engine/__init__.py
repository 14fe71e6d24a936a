"""The engine: our own LLaDA / Dream networks, the samplers, tokenizers, registry and model manager."""
