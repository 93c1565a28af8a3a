"""The live adapter's network paths (API, Kafka bootstrap, Prometheus query), pointed at the local stack.

Only a real cluster exercises its Kubernetes paths (nodes, pods, the toolbox Job, pod
logs); everything it does over plain network connections is proven here, in CI.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from tests.bdd.targets.live import LiveTarget
from tests.integration.support import Stack, to_body
from tests.tools.run import run

REPO = Path(__file__).resolve().parents[2]


def no_outputs(folder: Path) -> Path:
    """A saved `terraform output -json` of a stack that was never applied."""
    path = folder / "outputs.json"
    path.write_text("{}")
    return path


@pytest.fixture
def live(local_stack: Stack, tmp_path: Any) -> LiveTarget:
    cfg = local_stack.cfg
    return LiveTarget(
        {
            "EDGE_API_URL": cfg.api_url,
            "CA4_API_TOKEN": local_stack.token,
            "CA4_KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
            "CA4_PROMETHEUS_URL": cfg.prometheus_url,
            "CA4_KAFKA_BROKERS": "1",
            "CA4_KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "CA4_TF_OUTPUTS": str(no_outputs(tmp_path)),
            "CA4_VERIFY_TIMEOUT": "30",
        }
    )


def test_prerequisites_are_seen_and_the_cluster_is_reported_missing(live: LiveTarget) -> None:
    for need in ("api", "token", "kafka", "prometheus"):
        assert live.missing(need) is None, f"{need}: {live.missing(need)}"
    assert "no kubeconfig" in (live.missing("cluster") or "")


def test_the_api_path_posts_and_reads_readiness(
    live: LiveTarget, session_events: list[GpuMetadataEvent]
) -> None:
    ok, seen = live.component_ready("processor-api")
    assert ok, seen
    resp = live.post_metadata(to_body(session_events[0]))
    assert resp.status_code == 202, resp.text
    assert live.post_metadata(to_body(session_events[0]), token="").status_code == 401


def test_the_kafka_path_describes_topics_and_follows_the_consumer_group(
    live: LiveTarget, session_events: list[GpuMetadataEvent]
) -> None:
    info = live.describe_topic(names.TOPIC)
    assert info is not None and (info.partitions, info.replication) == live.expected_topic == (3, 1)
    before = live.end_offsets(names.TOPIC)
    event_id = live.post_metadata(to_body(session_events[-1])).json()["event_ids"][0]
    ref = live.find_record(
        names.TOPIC, before, lambda r: dict(r.headers).get("event_id") == event_id.encode()
    )
    live.eventually(
        "the worker committing past the record", lambda: live.committed_offset(ref.partition) > ref.offset
    )


def test_the_prometheus_path_queries_the_scraped_services(live: LiveTarget) -> None:
    # waits for both: right after start-up Prometheus may have scraped one target, or none
    expr = 'sum(up{job=~"processor-api|metadata-worker"})'
    live.eventually("both targets scraped and up", lambda: live.prometheus_value(expr) == 2.0)


def test_a_strict_verify_run_without_a_cluster_fails_fast_naming_each_missing_input(tmp_path: Path) -> None:
    """What `make ca4-verify-e2e` runs, on a machine where nothing of the lifecycle ran: it must
    fail (a skip is not a pass), within 10 s, with one line per missing input saying how to get
    it, in the terminal and in the report; --allow-skips is the explicit lenient mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CA4_", "EDGE_", "KUBECONFIG"))}
    env.update(CA4_TF_OUTPUTS=str(no_outputs(tmp_path)), CA4_SECRETS_DIR=str(tmp_path / "kubeconfigs"))
    report = tmp_path / "verify-live.md"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/bdd",
        "--target=live",
        "-m",
        "e2e",
        "-p",
        "no:cacheprovider",
        f"--bdd-report={report}",
    ]
    started = time.monotonic()
    strict = run(command, timeout=60, env=env, cwd=REPO)
    took = time.monotonic() - started
    out = strict.stdout + strict.stderr
    assert strict.returncode == 1, f"exit {strict.returncode}, expected 1 (failed):\n{out[-3000:]}"
    assert took < 10, f"a verify run without a cluster took {took:.1f} s"
    assert "required checks that could not run" in out, out[-3000:]
    for needle in ("EDGE_API_URL is not set", "make ca4-plan ca4-apply"):
        assert needle in out, f"{needle!r} not in the output:\n{out[-3000:]}"
    text = report.read_text()
    assert "## What was missing" in text and "EDGE_API_URL is not set" in text, text[:2000]
    assert " 0 passed" in text or "2 scenarios: 0 passed" in text, text[:400]
    lenient = run([*command, "--allow-skips"], timeout=60, env=env, cwd=REPO)
    assert lenient.returncode == 0 and "skipped" in lenient.stdout, lenient.stdout[-2000:]
