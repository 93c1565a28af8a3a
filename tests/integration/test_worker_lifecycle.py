"""SIGTERM: the worker finishes its batch, commits, and exits cleanly within 10 s."""

from __future__ import annotations

import signal

from ca4_events.schema import GpuMetadataEvent
from tests.integration.support import Stack


def test_sigterm_stops_the_worker_cleanly_and_a_restart_resumes(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    ids = local_stack.post_events(session_events)
    # the worker is started again when the block ends, whether or not an assertion failed
    with local_stack.worker_stopped(signal.SIGTERM) as stop:
        assert stop.code == 0, f"the worker exited with {stop.code} after SIGTERM"
        assert stop.seconds < 10, f"the worker took {stop.seconds:.1f} s to stop"
        assert '"msg":"signal received, finishing the current batch"' in stop.log
        assert '"msg":"metadata worker stopped"' in stop.log
    # whatever was published before the stop is stored once the worker is back
    local_stack.wait_for_documents(ids)
