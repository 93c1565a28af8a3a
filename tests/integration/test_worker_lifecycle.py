"""SIGTERM: the worker finishes its batch, commits, and exits cleanly within 10 s."""

from __future__ import annotations

import signal
import time

import httpx

from ca4_events.schema import GpuMetadataEvent
from local_stack import services
from tests.integration.support import Stack, to_body


def test_sigterm_stops_the_worker_cleanly_and_a_restart_resumes(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    cfg = local_stack.cfg
    worker = services.worker_process(cfg)
    pid = worker.pid()
    assert pid is not None, "the worker should be running"
    with httpx.Client(base_url=cfg.api_url, headers=local_stack.headers()) as api:
        ids = [api.post("/metadata", json=to_body(e)).json()["event_ids"][0] for e in session_events]

    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = worker.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 0, f"the worker exited with {code} after SIGTERM"
    assert elapsed < 10, f"the worker took {elapsed:.1f} s to stop"
    log = worker.log_file.read_text()
    assert '"msg":"signal received, finishing the current batch"' in log
    assert '"msg":"metadata worker stopped"' in log

    # whatever was published before the stop is stored once the worker is back
    services.start_worker(cfg)
    local_stack.wait_for_documents(ids)
