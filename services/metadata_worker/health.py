"""The worker's health: its state (heartbeat, readiness and why not) and the HTTP endpoints
/healthz, /readyz and /metrics that report it, on one small threaded server."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from metadata_worker import metrics

log = logging.getLogger(__name__)


class Health:
    """Liveness heartbeat and readiness, read by the HTTP probe server."""

    STALE_AFTER_S = 60.0

    def __init__(self) -> None:
        self._beat = time.monotonic()
        self._ready = False
        self.reason = "starting"

    def beat(self) -> None:
        """The loop is alive."""
        self._beat = time.monotonic()

    @property
    def alive(self) -> bool:
        """The loop turned recently."""
        return time.monotonic() - self._beat < self.STALE_AFTER_S

    @property
    def ready(self) -> bool:
        """The worker can store events."""
        return self._ready

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Record readiness (and why not)."""
        if ready != self._ready:
            log.info("readiness changed", extra={"ready": ready, "reason": None if ready else reason})
        self._ready = ready
        self.reason = "" if ready else reason
        metrics.READY.set(1 if ready else 0)


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; call ``shutdown()`` on the result to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = health.alive
                self._json(200 if ok else 503, {"status": "ok" if ok else "stalled"})
            elif path == "/readyz":
                if health.ready:
                    self._json(200, {"status": "ready"})
                else:
                    self._json(503, {"status": "not ready", "reason": health.reason})
            else:
                self._json(404, {"detail": "not found"})

        def _json(self, code: int, body: dict[str, str]) -> None:
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the JSON log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
