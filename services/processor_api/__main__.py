"""``python -m processor_api`` (or ``ca4-api``): serve the Processor API with uvicorn."""

from __future__ import annotations

import argparse
import sys

import uvicorn
from pydantic import ValidationError

from ca4_events import jsonlog
from processor_api.app import create_app
from processor_api.config import Settings


def main(argv: list[str] | None = None) -> int:
    """Read settings from the environment and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="ca4-api",
        description=(
            "CA4 Processor API: POST /metadata publishes accelerator snapshots to Kafka. "
            "Configured only by environment variables: "
            + ", ".join(name.upper() for name in Settings.model_fields)
            + " (API_TOKENS is required; see the README's configuration contract)."
        ),
    )
    parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            print(f"ca4-api: configuration error in {name}: {err['msg']}", file=sys.stderr)
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
