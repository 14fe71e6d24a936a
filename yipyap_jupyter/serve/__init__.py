"""The service on Ray Serve: replicas across GPUs and machines behind the extension's own HTTP API.

`yipyap-serve` (`cli.py`) starts or joins a Ray cluster and deploys `app.build_app`: an
ingress (`ingress.py`) that speaks `/api/diffusion` exactly as the Jupyter extension does,
model replicas (`replica.py`) that each hold `DiffusionLLMService`s keyed by model id, and a
board (`board.py`) of what each replica holds. Needs the `serve` extra (`ray[serve]`).
"""
