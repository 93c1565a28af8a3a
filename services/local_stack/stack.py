"""Brings the whole local stack up and down, in dependency order, idempotently."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

from local_stack import ferretdb, kafka, s3, services
from local_stack.config import BUCKET, StackConfig
from local_stack.procs import Process, http_ok, note, port_open


@dataclass(frozen=True)
class Component:
    """One process of the stack, how to start it and how to tell it is healthy."""

    name: str
    process: Callable[[StackConfig], Process]
    start: Callable[[StackConfig], None]
    endpoint: Callable[[StackConfig], str]
    healthy: Callable[[StackConfig], bool]
    stop_timeout: float = 20.0


COMPONENTS: tuple[Component, ...] = (
    Component(
        "s3",
        s3.process,
        s3.start,
        lambda c: c.s3_endpoint,
        lambda c: http_ok(f"{c.s3_endpoint}/moto-api/"),
    ),
    Component(
        "ferretdb",
        ferretdb.process,
        ferretdb.start,
        lambda c: c.mongo_uri,
        lambda c: port_open(c.mongo_port),
        10,
    ),
    Component(
        "kafka",
        kafka.process,
        kafka.start,
        lambda c: c.kafka_bootstrap,
        lambda c: port_open(c.kafka_port),
        30,
    ),
    Component(
        "metadata-worker",
        services.worker_process,
        services.start_worker,
        lambda c: c.worker_url,
        lambda c: http_ok(f"{c.worker_url}/readyz"),
    ),
    Component(
        "processor-api",
        services.api_process,
        services.start_api,
        lambda c: c.api_url,
        lambda c: http_ok(f"{c.api_url}/readyz"),
    ),
)


def component(name: str) -> Component:
    """Look a component up by name."""
    for comp in COMPONENTS:
        if comp.name == name:
            return comp
    raise KeyError(name)


def up(cfg: StackConfig) -> None:
    """Start every component that is not running yet, in dependency order."""
    for comp in COMPONENTS:
        comp.start(cfg)
    note("")
    note("CA4 local stack is up:")
    for line in summary(cfg):
        note("  " + line)


def summary(cfg: StackConfig) -> list[str]:
    """Endpoints and where to look."""
    return [
        f"Processor API    {cfg.api_url}   (POST /metadata, token in {cfg.token_file})",
        f"Worker probes    {cfg.worker_url}/readyz  /metrics",
        f"Kafka            {cfg.kafka_bootstrap}",
        f"Mongo-wire DB    {cfg.mongo_uri}  (FerretDB, database ca4)",
        f"S3 (moto)        {cfg.s3_endpoint}  bucket {BUCKET}"
        + ("" if cfg.archive_enabled else " (archive off)"),
        f"logs             {cfg.logs_dir}/",
    ]


def down(cfg: StackConfig) -> list[str]:
    """Stop every component, dependants first; returns the names that were running."""
    stopped = []
    for comp in reversed(COMPONENTS):
        if comp.process(cfg).stop(timeout=comp.stop_timeout):
            stopped.append(comp.name)
    return stopped


def status(cfg: StackConfig) -> list[tuple[str, int | None, str, bool]]:
    """``(name, pid, endpoint, healthy)`` for every component."""
    rows = []
    for comp in COMPONENTS:
        pid = comp.process(cfg).pid()
        rows.append((comp.name, pid, comp.endpoint(cfg), pid is not None and comp.healthy(cfg)))
    return rows


def clean(cfg: StackConfig, cache: bool = False) -> None:
    """Stop everything and delete the state folder (and the download cache with ``cache``)."""
    down(cfg)
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    if cache:
        shutil.rmtree(cfg.cache_dir, ignore_errors=True)
