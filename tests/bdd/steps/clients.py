"""Steps of e2e.feature for the real clients: the producer CLI and the Colab notebook.

Both run as a user runs them, with only their documented inputs: ``EDGE_API_URL``,
``CA4_API_TOKEN`` and, for a stack that signs its own certificate, ``CA4_CA_BUNDLE``
(live: the target's API through the load balancer, the token and CA ``ca4-platform-setup``
wrote). They replay the real H200 captures instead of reading devices.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_bdd import then, when

from ca4_events import names
from local_stack import pipeline
from tests.bdd.targets.base import Target
from tests.tools import notebook

H200 = Path(__file__).resolve().parents[2] / "fixtures" / "gpu" / "h200"
POST_LINE = re.compile(r"^POST /metadata -> (\d+)\s+(\d+) event\(s\)")
EVENT_LINE = re.compile(r"^  ([0-9a-f-]{36})$")


@dataclass
class Sent:
    """What a client reported: each request's status, and the ids it had accepted."""

    client: str
    statuses: list[int]
    event_ids: list[str]
    output: str


def _client_env(target: Target) -> dict[str, str]:
    env = {"EDGE_API_URL": target.api_url, "CA4_API_TOKEN": target.token}
    if target.ca_bundle:
        env["CA4_CA_BUNDLE"] = target.ca_bundle
    return env


@when("the producer client replays the H200 captures to the Processor API", target_fixture="sent")
def producer_client_replays(target: Target) -> Sent:
    """``python -m ca4_producer sample --replay``: one second of snapshots, in batches of 3."""
    target.require("api", "token")
    argv = [sys.executable, "-m", "ca4_producer", "sample", "--replay", str(H200)]
    argv += ["--interval", "0.2", "--duration", "1", "--batch-size", "3"]
    done = subprocess.run(
        argv,
        env=pipeline.contract_env(_client_env(target)),  # only its documented inputs
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"the producer client exited {done.returncode}:\n{output[-2000:]}"
    lines = done.stdout.splitlines()
    statuses = [int(m.group(1)) for m in map(POST_LINE.match, lines) if m]
    ids = [m.group(1) for m in map(EVENT_LINE.match, lines) if m]
    return Sent("producer client", statuses, ids, output)


@when("the Colab notebook runs headlessly in replay mode against the Processor API", target_fixture="sent")
def notebook_replays(target: Target) -> Sent:
    """Every cell, with the bundle built from this checkout and served over loopback."""
    target.require("api", "token")
    with tempfile.TemporaryDirectory(prefix="ca4-notebook-") as tmp:
        work = Path(tmp)
        with notebook.served_bundle(work / "www") as (url, bundle):
            env = {
                **_client_env(target),
                "CA4_REPLAY": str(H200),
                "CA4_SAMPLE_SECONDS": "1.0",
                "CA4_SAMPLE_INTERVAL": "0.2",
                "CA4_BATCH_SIZE": "3",
                "CA4_PRODUCER_BUNDLE_URL": url,
                "CA4_PRODUCER_BUNDLE_SHA256": bundle.sha256,
            }
            run = notebook.execute(env, work)
    statuses = [run.result["first"]["status"]] + [b["status"] for b in run.result["batches"]]
    return Sent("notebook", statuses, run.event_ids, run.text)


@then("each of the client's requests was answered 202")
def answered_202(sent: Sent) -> None:
    """Every POST accepted whole, and at least one was made."""
    assert sent.statuses, f"the {sent.client} made no request:\n{sent.output[-2000:]}"
    assert set(sent.statuses) == {202}, f"the {sent.client}'s answers: {sent.statuses}\n{sent.output[-2000:]}"
    assert sent.event_ids, f"the {sent.client} reported no accepted event id:\n{sent.output[-2000:]}"


@then("every event the client sent is stored")
def every_event_stored(target: Target, sent: Sent) -> None:
    """Each id found by ``_id`` in gpu_metadata (one probe for all of them)."""
    target.require("database")
    ops = [{"op": "get", "collection": names.COLLECTION_EVENTS, "id": i} for i in sent.event_ids]

    def all_stored() -> list[Any] | None:
        docs = target.db(ops)
        return docs if all(docs) else None

    target.eventually(f"the {len(ops)} events of the {sent.client} stored", all_stored)
