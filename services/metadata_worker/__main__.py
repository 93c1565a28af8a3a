"""``python -m metadata_worker`` (or ``ca4-worker``): run the Metadata Worker."""

from __future__ import annotations

import threading

from ca4_events import jsonlog
from ca4_events.service import from_command_line
from metadata_worker.config import Settings
from metadata_worker.main import install_signal_handlers, run


def main(argv: list[str] | None = None) -> int:
    """Read settings from the environment and run until SIGTERM/SIGINT."""
    settings = from_command_line(
        Settings,
        "ca4-worker",
        "CA4 Metadata Worker: consumes gpu-metadata, enriches each event, stores it in the "
        "Mongo-compatible database (and optionally archives to S3), then commits.",
        argv,
    )
    if settings is None:
        return 2
    jsonlog.configure("metadata-worker", settings.log_level)
    stop = threading.Event()
    install_signal_handlers(stop)
    return run(settings, stop)


if __name__ == "__main__":
    raise SystemExit(main())
