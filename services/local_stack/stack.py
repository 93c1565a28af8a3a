"""Brings the whole local stack up and down, in dependency order, idempotently."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_stack import docker_backend, ferretdb, kafka, pipeline, prometheus, s3
from local_stack.config import BUCKET, StackConfig
from local_stack.procs import Process, StackError, note


@dataclass(frozen=True)
class Component:
    """One server of the stack: how to start and stop it, and how to tell it runs and is healthy."""

    name: str
    start: Callable[[StackConfig], None]
    stop: Callable[[StackConfig], bool]
    running: Callable[[StackConfig], str | None]  # PID or container id
    endpoint: Callable[[StackConfig], str]
    healthy: Callable[[StackConfig], bool]
    installed: Callable[[], bool] = lambda: True  # optional components may be absent


def _process(
    name: str,
    handle: Callable[[StackConfig], Process],
    *,
    start: Callable[[StackConfig], None],
    stop: Callable[[StackConfig], bool],
    ready: Callable[[StackConfig], bool],
    endpoint: Callable[[StackConfig], str],
    installed: Callable[[], bool] = lambda: True,
) -> Component:
    def running(cfg: StackConfig) -> str | None:
        pid = handle(cfg).pid()
        return None if pid is None else str(pid)

    return Component(name, start, stop, running, endpoint, ready, installed)


def _container(
    name: str,
    key: str,
    start: Callable[[StackConfig], None],
    endpoint: Callable[[StackConfig], str],
    ready: Callable[[StackConfig], bool],
) -> Component:
    return Component(
        name,
        start,
        lambda c: docker_backend.stop(c, key),
        lambda c: docker_backend.running(c, key),
        endpoint,
        ready,
    )


def _server(
    name: str,
    module: Any,
    endpoint: Callable[[StackConfig], str],
    installed: Callable[[], bool] = lambda: True,
) -> Component:
    """A server whose module has ``process``, ``start``, ``stop`` and ``ready`` (s3.py, kafka.py, ...)."""
    return _process(
        name,
        module.process,
        start=module.start,
        stop=module.stop,
        ready=module.ready,
        endpoint=endpoint,
        installed=installed,
    )


# each component's start waits for the same ``ready`` that status reports as healthy
SERVICES: tuple[Component, ...] = (
    _server("metadata-worker", pipeline.WORKER, lambda c: c.worker_url),
    _server("processor-api", pipeline.API, lambda c: c.api_url),
    _server(
        "prometheus",
        prometheus,
        lambda c: c.prometheus_url,
        installed=lambda: prometheus.binary() is not None,
    ),
)
NATIVE: tuple[Component, ...] = (
    _server("s3", s3, lambda c: c.s3_endpoint),
    _server("ferretdb", ferretdb, lambda c: c.mongo_uri),
    _server("kafka", kafka, lambda c: c.kafka_bootstrap),
)
DOCKER: tuple[Component, ...] = (
    _container("s3", "s3", docker_backend.start_s3, lambda c: c.s3_endpoint, s3.ready),
    _container("mongodb", "mongo", docker_backend.start_mongo, lambda c: c.mongo_uri, ferretdb.ready),
    _container("kafka", "kafka", docker_backend.start_kafka, lambda c: c.kafka_bootstrap, kafka.ready),
)


def components(cfg: StackConfig) -> tuple[Component, ...]:
    """Every component of this stack, in start order.

    With ``backend="docker"`` and no Docker daemon (or no Docker SDK) this raises a
    ``StackError`` saying so, so up, status and down all refuse the same readable way.
    """
    if cfg.backend == "docker":
        problem = docker_backend.docker_problem()
        if problem:
            raise StackError(f"CA4_LOCAL_BACKEND=docker, but {problem}; unset it to use the native stack")
        return DOCKER + SERVICES
    return NATIVE + SERVICES


def component(cfg: StackConfig, name: str) -> Component:
    """Look a component up by name."""
    for comp in components(cfg):
        if comp.name == name:
            return comp
    raise KeyError(name)


def up(cfg: StackConfig) -> None:
    """Start every component that is not running yet, in dependency order."""
    for comp in components(cfg):
        comp.start(cfg)
    note("")
    note("CA4 local stack is up:")
    for line in summary(cfg):
        note("  " + line)


def summary(cfg: StackConfig) -> list[str]:
    """Endpoints and where to look."""
    db = "FerretDB" if cfg.backend == "native" else "MongoDB container"
    return [
        f"Processor API    {cfg.api_url}   (POST /metadata, token in {cfg.token_file})",
        f"Worker probes    {cfg.worker_url}/readyz  /metrics",
        f"Kafka            {cfg.kafka_bootstrap}",
        f"Mongo-wire DB    {cfg.mongo_uri}  ({db}, database ca4)",
        f"S3 (moto)        {cfg.s3_endpoint}  bucket {BUCKET}"
        + ("" if cfg.archive_enabled else " (archive off)"),
        f"logs             {cfg.logs_dir}/",
    ]


def down(cfg: StackConfig) -> list[str]:
    """Stop every component, dependants first; returns the names that were running."""
    return [comp.name for comp in reversed(components(cfg)) if comp.stop(cfg)]


def status(cfg: StackConfig) -> list[tuple[str, str | None, str, str]]:
    """``(name, pid or container id, endpoint, state)``.

    The state is one of healthy, unhealthy, stopped or not installed.
    """
    rows = []
    for comp in components(cfg):
        ident = comp.running(cfg)
        if ident is None:
            state = "stopped" if comp.installed() else "not installed"
        else:
            state = "healthy" if comp.healthy(cfg) else "unhealthy"
        rows.append((comp.name, ident, comp.endpoint(cfg), state))
    return rows


def clean(cfg: StackConfig, cache: bool = False) -> None:
    """Stop everything and delete the state folder (and the download cache with ``cache``)."""
    down(cfg)
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    if cache:
        shutil.rmtree(cfg.cache_dir, ignore_errors=True)
