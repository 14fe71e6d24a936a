"""The jupyter-server extension: `/api/diffusion` over HTTP and Server-Sent Events."""
