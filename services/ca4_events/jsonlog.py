"""JSON-lines logging to stdout, shared by the API and the worker.

One object per line with ``ts``, ``level``, ``logger``, ``msg`` and whatever the call
passed in ``extra=`` (event ids, topic, partition, offsets...), so Loki can filter on them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

# attributes every LogRecord has; anything else came in through ``extra=``
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


class JsonFormatter(logging.Formatter):
    """Format a record as one compact JSON object."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` with its extras; exceptions become one ``exc`` string."""
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def configure(service: str, level: str = "INFO") -> None:
    """Send every logger's output to stdout as JSON lines (idempotent)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO about every (re)connection; keep its warnings
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # kafka-python 3 warns about its own slow selector tasks under load; not actionable
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
