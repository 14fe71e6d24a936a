"""`yipyap-serve`: the service on Ray Serve, for a team (one box with N GPUs, or a Ray cluster).

Starts a local Ray instance (or joins a cluster with `--address`), deploys the
application, prints one status line (where it listens, the token, and what each replica
loaded on which device) and serves until Ctrl+C, which shuts it down cleanly.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..constants import DEFAULT_MODEL_ID

if TYPE_CHECKING:
    from .app import Placement
    from .config import ServeConfig

#: The token's environment variable, so it need not be on a command line (which `ps` shows).
TOKEN_ENV = "YIPYAP_SERVE_TOKEN"


def _scale(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    try:
        bounds = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError("use MIN:MAX, e.g. 1:4") from None
    if not 0 < bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError("need 0 < MIN <= MAX")
    return bounds


def _parser() -> argparse.ArgumentParser:
    from .config import ServeConfig  # no Ray in it: `--help` stays quick

    p = argparse.ArgumentParser(prog="yipyap-serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL_ID, help="model of requests that name none, loaded on every replica")
    p.add_argument("--replicas", type=int, default=1, help="model replicas (each one model, one device)")
    p.add_argument("--autoscale", type=_scale, metavar="MIN:MAX",
                   help="let Serve scale the replicas between MIN and MAX by load (instead of --replicas)")
    p.add_argument("--target-ongoing-requests", type=float, default=4.0,
                   help="with --autoscale: requests in flight per replica that Serve aims for")
    p.add_argument("--host", default="127.0.0.1", help="address the HTTP proxy binds (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"the API token (default ${TOKEN_ENV}, else a"
                   " new random one, printed)")
    p.add_argument("--address", help="join this Ray cluster (e.g. 10.0.0.1:6379 or auto) instead of starting one")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs each replica asks for (1: one GPU each)")
    p.add_argument("--max-ongoing-requests", type=int, default=16,
                   help="requests one replica takes at once (those of one model share its forward passes)")
    p.add_argument("--models-per-replica", type=int, default=1,
                   help="models one replica holds at most (the least recently used is freed first)")
    p.add_argument("--settings", help="user-settings file of the ingress and every replica (a shared path on a cluster)")
    p.add_argument("--metrics-db", help="the ingress's SQLite request log (default under the Jupyter data dir)")
    p.add_argument("--log-dir", help="structured.log and backend.log of the ingress and every replica, on each node"
                   " (default <Jupyter data dir>/yipyap_jupyter/logs)")
    p.add_argument("--rate-limit-per-minute", type=float, default=ServeConfig.rate_limit_per_minute,
                   help="generation requests per minute per client address that pass validation (0 turns it off)")
    p.add_argument("--rate-limit-burst", type=int, default=ServeConfig.rate_limit_burst,
                   help="generation requests a client may make at once before the per-minute rate applies")
    return p


#: Options of the command itself (where Ray and the HTTP proxy run), not of the application.
COMMAND_OPTIONS = ("host", "port", "address", "num_cpus")


def application_options(args: argparse.Namespace, token: str) -> tuple[ServeConfig, Placement]:
    """What the parsed options ask of the application: its settings and its replicas."""
    from .app import Placement
    from .config import ServeConfig

    config = ServeConfig(token=token, default_model=args.model, models_per_replica=args.models_per_replica,
                         settings_path=args.settings, metrics_db=args.metrics_db, log_dir=args.log_dir,
                         rate_limit_per_minute=args.rate_limit_per_minute, rate_limit_burst=args.rate_limit_burst)
    placement = Placement(replicas=args.replicas, cpus_per_replica=args.cpus_per_replica,
                          gpus_per_replica=args.gpus_per_replica, max_ongoing_requests=args.max_ongoing_requests,
                          autoscale=args.autoscale, target_ongoing_requests=args.target_ongoing_requests)
    return config, placement


def status_line(url: str, token_shown: str, ray_address: str, reports: list[dict[str, Any]]) -> str:
    """One line: where the API listens, how to authenticate, and what each replica loaded on which device."""
    held = []
    for report in reports:
        models = [f"{m['id']} on {m['device']}" for m in report["models"] if m.get("loaded")] or ["nothing loaded"]
        held.append(f"{report['replica']} ({report['node']}): {', '.join(models)}")
    return (f"yipyap-serve: {url}/api/diffusion (token {token_shown}) · Ray {ray_address} · "
            f"{len(reports)} replica{'s' if len(reports) != 1 else ''}: {'; '.join(held)}")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked (argparse exits with status 2 on a bad option)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.autoscale is None and args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        import ray
        from ray import serve
    except ImportError:
        print("yipyap-serve needs Ray Serve: pip install 'yipyap-jupyter[serve]'", file=sys.stderr)
        return 1
    from .app import APP_NAME, build_app

    token = args.token or secrets.token_hex(16)
    config, placement = application_options(args, token)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine unless the operator asks
    # Ray starts its workers at niceness 15 to keep its own daemons responsive; here the workers are the service:
    # niced, a replica computed 20 % slower than a Jupyter server on a machine busy with other work.
    os.environ.setdefault("RAY_worker_niceness", "0")
    signal.signal(signal.SIGTERM, _stop)
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(build_app(config, placement), name=APP_NAME, route_prefix="/", blocking=False)
        board = serve.get_deployment_handle("ReplicaBoard", app_name=APP_NAME)
        reports = board.replicas.remote().result()
        url = f"http://{args.host}:{args.port}"
        shown = token if not args.token else "as given"
        print(status_line(url, shown, ray.get_runtime_context().gcs_address, reports), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("yipyap-serve: shutting down", file=sys.stderr, flush=True)
    finally:
        if args.address:
            serve.delete(APP_NAME)  # the cluster and its other applications stay
        else:
            serve.shutdown()
        ray.shutdown()
    return 0
