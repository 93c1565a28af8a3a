"""``python -m processor_api`` (or ``ca4-api``): serve the Processor API with uvicorn."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import uvicorn

from ca4_events import jsonlog
from ca4_events.service import from_command_line
from processor_api import metrics
from processor_api.app import create_app
from processor_api.config import Settings


def _serve(app: Any, settings: Settings, *, factory: bool = False, workers: int | None = None) -> None:
    """uvicorn with the settings every deployment uses."""
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our JSON logging
        access_log=False,  # AccessLog middleware writes one line per request
        timeout_graceful_shutdown=10,
        server_header=False,
        factory=factory,
        workers=workers,
    )


def main(argv: list[str] | None = None) -> int:
    """Read settings from the environment and serve until SIGTERM/SIGINT."""
    settings = from_command_line(
        Settings,
        "ca4-api",
        "CA4 Processor API: POST /metadata publishes accelerator snapshots to Kafka.",
        argv,
    )
    if settings is None:
        return 2
    jsonlog.configure("processor-api", settings.log_level)
    if settings.api_workers == 1:
        _serve(create_app(settings), settings)
        return 0
    # several processes on one port: uvicorn's supervisor starts them (each builds its app
    # from the environment) and restarts one that dies; their metrics meet in a directory
    with tempfile.TemporaryDirectory(prefix="ca4-api-metrics-") as shared:
        os.environ[metrics.MULTIPROCESS_DIR_VARIABLE] = shared
        _serve("processor_api.app:from_environment", settings, factory=True, workers=settings.api_workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
