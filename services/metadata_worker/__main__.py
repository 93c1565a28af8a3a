"""``python -m metadata_worker`` (or ``ca4-worker``): run the Metadata Worker."""

from __future__ import annotations

import argparse
import sys
import threading

from pydantic import ValidationError

from ca4_events import jsonlog
from metadata_worker.config import Settings
from metadata_worker.main import install_signal_handlers, run


def main(argv: list[str] | None = None) -> int:
    """Read settings from the environment and run until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="ca4-worker",
        description=(
            "CA4 Metadata Worker: consumes gpu-metadata, enriches each event, stores it in the "
            "Mongo-compatible database (and optionally archives to S3), then commits. "
            "Configured only by environment variables: MONGO_URI (required), MONGO_DATABASE, "
            "KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, KAFKA_DLQ_TOPIC, KAFKA_GROUP_ID, "
            "ARCHIVE_ENABLED, S3_BUCKET, S3_REGION, S3_PREFIX, S3_ENDPOINT_URL, WORKER_BATCH_MAX, "
            "WORKER_POLL_TIMEOUT_MS, WORKER_HTTP_HOST, WORKER_HTTP_PORT, "
            "WORKER_RETRY_INITIAL_SECONDS, WORKER_RETRY_MAX_SECONDS, LOG_LEVEL."
        ),
    )
    parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            print(f"ca4-worker: configuration error in {name}: {err['msg']}", file=sys.stderr)
        return 2
    jsonlog.configure("metadata-worker", settings.log_level)
    stop = threading.Event()
    install_signal_handlers(stop)
    return run(settings, stop)


if __name__ == "__main__":
    raise SystemExit(main())
