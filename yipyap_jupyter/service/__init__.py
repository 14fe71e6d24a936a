"""The service: where a request becomes a stream of typed events.

Kept free of Tornado and, at import time, of torch, so the server and the kernel
can import it while starting up.
"""
