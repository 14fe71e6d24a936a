"""The engine: the model families (networks, samplers), the checkpoint machinery, the registry and the runtime.

Rooms: `families/` (one folder per family), `checkpoint/` (files, weights, checks),
`samplers/` (what programs share), `runtime/` (queue, residency, scheduler, batches,
engine thread); beside them the model (`model.py`), its options, specs, info and tokenizer.
"""
