"""The Serve application: the board, the model replicas and the ingress, bound together.

`yipyap-serve` deploys `build_app`; `app_builder` is the same application for Serve's own
tools: `serve run yipyap_jupyter.serve.app:app_builder model=tiny replicas=2`, or a Serve
config file's `import_path` (KubeRay's RayService: docs/kuberay-rayservice.yaml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve import Application

from .board import ReplicaBoard
from .config import ServeConfig
from .ingress import DiffusionIngress
from .replica import DiffusionReplica

#: The application's name in Serve (`serve status`, `serve.delete`).
APP_NAME = "yipyap"
#: Requests the ingress handles at once: it only relays, so every open stream is one of them.
INGRESS_MAX_ONGOING = 1000


@dataclass(frozen=True)
class Placement:
    """How many model replicas, and what each asks of Ray.

    `autoscale` (min, max) replaces the fixed `replicas` with Serve's autoscaling, which adds
    replicas while each has more than `target_ongoing_requests` requests in flight.
    """

    replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_ongoing_requests: int = 16
    autoscale: tuple[int, int] | None = None
    target_ongoing_requests: float = 4.0


def build_app(config: ServeConfig, placement: Placement) -> Application:
    """The application `serve.run` deploys."""
    board = serve.deployment(
        num_replicas=1, max_ongoing_requests=INGRESS_MAX_ONGOING, ray_actor_options={"num_cpus": 0},
    )(ReplicaBoard).bind(config.heartbeat_seconds)
    scale: dict[str, Any] = (
        {"num_replicas": placement.replicas} if placement.autoscale is None else
        {"autoscaling_config": {"min_replicas": placement.autoscale[0], "max_replicas": placement.autoscale[1],
                                "target_ongoing_requests": placement.target_ongoing_requests}})
    replicas = serve.deployment(
        **scale,
        max_ongoing_requests=placement.max_ongoing_requests,
        health_check_period_s=config.heartbeat_seconds,
        ray_actor_options={"num_cpus": placement.cpus_per_replica, "num_gpus": placement.gpus_per_replica},
    )(DiffusionReplica).bind(config, board)
    ingress = serve.deployment(
        name="DiffusionIngress", max_ongoing_requests=INGRESS_MAX_ONGOING, ray_actor_options={"num_cpus": 0.1},
    )(serve.ingress()(DiffusionIngress))
    return ingress.bind(config, replicas, board)


def app_builder(args: dict[str, Any]) -> Application:
    """The application from Serve's key=value arguments: `yipyap-serve`'s option names (`gpus_per_replica`).

    The token comes from `YIPYAP_SERVE_TOKEN` only, never from the arguments (a config file is
    no place for it); where the proxy listens is Serve's `http_options`, not an argument here.
    """
    from .cli import COMMAND_OPTIONS, TOKEN_ENV, application_options, parse

    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ValueError(f"set {TOKEN_ENV} where the application is built: the API needs a token")
    refused = sorted({"token", *COMMAND_OPTIONS} & set(args))
    if refused:
        raise ValueError(f"not application arguments: {', '.join(refused)} (use Serve's http_options and the environment)")
    options = parse([f"--{key.replace('_', '-')}={value}" for key, value in args.items()])
    return build_app(*application_options(options, token))
