"""``python -m processor_api`` (or ``ca4-api``): serve the Processor API with uvicorn."""

from __future__ import annotations

import uvicorn

from ca4_events import jsonlog
from ca4_events.service import from_command_line
from processor_api.app import create_app
from processor_api.config import Settings


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
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our JSON logging
        access_log=False,  # AccessLog middleware writes one line per request
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
