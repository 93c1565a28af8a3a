"""A few seconds of the benchmark on the session's stack: the harness works and reports everything.

It checks that every figure, ratio and target is there and plausible; the numbers
themselves come from ``nox -s bench`` (full scale), never from a timed test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.harness import TARGETS, Scale, markdown, run
from tests.integration.support import Stack


def test_the_benchmark_harness_measures_and_reports_everything(
    local_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reports = tmp_path_factory.mktemp("bench-reports")
    report = run(local_stack.cfg, Scale.named("smoke"), tmp_path_factory.mktemp("bench"), reports)
    figures = report["figures"]
    for name in (
        "raw_producer",
        "api_single",
        "api_batch100",
        "empty_single",
        "worker_sink",
        "raw_bulk_write",
    ):
        rate = figures[name].get("events_per_second", figures[name].get("records_per_second"))
        assert rate and rate > 0, f"{name}: no throughput measured ({figures[name]})"
    assert figures["api_batch100"]["acknowledged"] == Scale.named("smoke").batch_events, (
        "every event acknowledged"
    )
    e2e = figures["end_to_end"]
    assert e2e["not_seen"] == 0 and e2e["stored"] == e2e["acknowledged"], e2e
    assert e2e["p50_ms"] is not None and e2e["p50_ms"] <= e2e["p99_ms"]
    assert set(report["targets"]) == set(TARGETS)
    cost = report["cost_table"]
    assert all(v is not None and v >= 0 for v in cost["parts_us"].values()), cost["parts_us"]
    assert cost["api_cpu_us_measured"] and cost["api_cpu_us_measured"] > 0, cost
    assert figures["api_batch100"]["cpu_seconds"] > 0, "the load generator reports its own CPU"
    workers = figures["api_workers"]
    assert set(workers) == {"1", "2"}, workers
    for count, measured in workers.items():
        assert measured["acknowledged"] == Scale.named("smoke").batch_events, f"{count} workers: {measured}"
    assert set(figures["single_linger"]) == {"0", "1", "5"}, figures["single_linger"]
    for side in ("api_rss_after_load", "worker_rss_after_load"):
        assert figures[side]["peak_rss_mb"] and figures[side]["peak_rss_mb"] > 10, f"{side}: {figures[side]}"
    assert report["machine"]["cpus"] and report["machine"]["kafka-python"]
    saved = json.loads(Path(reports, "bench.json").read_text())
    assert saved["ratios"] == report["ratios"]
    assert "| API, batches of 100 (publisher: confluent-kafka) |" in markdown(report)
