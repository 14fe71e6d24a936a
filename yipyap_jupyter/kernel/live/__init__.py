"""One live generation, in rooms of one job each.

- `state`: `LiveGeneration`, the service's events folded into observable traits (step,
  canvas, status, the result or the error), and `GenerationStopped`;
- `runner`: `drive`, the one way a generation runs: its events come from one worker
  thread and are fed to the state on the calling thread;
- `throttle`: how often a live view redraws;
- `cell`: the `%%diffuse` cell's renderer, and `run_live`, a generation drawn in the running cell.

The generator and infiller panels (`kernel/panels/generation_view.py`) and the CLI are
renderers of the same state, run by the same `drive`.
"""
