"""A soak: a steady stream through API -> Kafka -> worker -> database, the archive on, for minutes.

``nox -s soak``: 20 minutes at 200 events/s (``CA4_SOAK_MINUTES``, ``CA4_SOAK_RATE``); make test
runs two minutes of it, so that one minute's generator hands over to the next there too. The
load comes from one load generator per minute, each started (its bodies built beforehand) at
the second the previous one ends, so the stream does not pause.
Every minute: the resident memory (RSS) of the API and the worker, and the end-to-end p99 of
the events acknowledged in that minute (the client's 202 to the worker's ``batch delivered``).
At the end, one scan by the run's tag: every acknowledged event stored once (by ``workload.seq``)
and archived once. The table goes to reports/soak.md and reports/soak.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from ca4_events import names
from local_stack import pipeline, s3
from tests.integration.support import Stack, log_lines, log_offset
from tests.tools import loadgen

REPORTS = Path("reports")
WARM_UP_MINUTES = 2  # memory before this is start-up, not a trend
MAX_GROWTH = 0.10
SETTLE_S = 180.0


def _minutes() -> int:
    raw = os.environ.get("CA4_SOAK_MINUTES", "20")
    assert raw.isdigit() and int(raw) >= 1, f"CA4_SOAK_MINUTES must be a whole number of minutes, not {raw!r}"
    return int(raw)


def _rate() -> float:
    raw = os.environ.get("CA4_SOAK_RATE", "200")
    try:
        return float(raw)
    except ValueError:
        raise AssertionError(f"CA4_SOAK_RATE must be events per second, not {raw!r}") from None


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process, in MiB (None when it is not running)."""
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _chunk(
    stack: Stack, run: str, *, minute: int, per_minute: int, rate: float, start_at: float, out: Path
) -> subprocess.Popen[str]:
    """The load generator of one minute, started in the background (it waits for ``start_at``)."""
    command = loadgen.argv(
        stack.cfg.api_url,
        stack.token,
        events=per_minute,
        batch=10,
        concurrency=8,
        rate=rate,
        out=out,
        run=run,
        max_seconds=90,
        first_seq=minute * per_minute,
        start_at=start_at,
    )
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_steady_stream_for_minutes_keeps_memory_flat_and_loses_nothing(
    local_stack: Stack, tmp_path: Path
) -> None:
    minutes, rate = _minutes(), _rate()
    per_minute = int(rate * 60)
    run = f"soak-{uuid.uuid4().hex[:6]}"
    cfg = local_stack.cfg
    offset = log_offset(cfg, "worker")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    pids = {
        "processor-api": pipeline.API.process(cfg).pid(),
        "metadata-worker": pipeline.WORKER.process(cfg).pid(),
    }
    memory: list[dict[str, float | None]] = [{name: rss_mib(pid) for name, pid in pids.items()}]
    start = time.time() + 5.0  # the first generator builds its bodies meanwhile
    outs = [tmp_path / f"minute-{m:02d}.jsonl" for m in range(minutes)]

    def chunk(minute: int) -> subprocess.Popen[str]:
        return _chunk(
            local_stack, run, minute=minute, per_minute=per_minute, rate=rate,
            start_at=start + 60.0 * minute, out=outs[minute],
        )  # fmt: skip

    current = chunk(0)
    for minute in range(minutes):
        # the next minute's generator starts now and waits for its minute: the stream stays steady
        following = chunk(minute + 1) if minute + 1 < minutes else None
        _, stderr = current.communicate(timeout=150)
        assert current.returncode == 0, f"minute {minute}: the load generator failed:\n{stderr[-2000:]}"
        memory.append({name: rss_mib(pid) for name, pid in pids.items()})
        if following is not None:
            current = following
    lines = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    acked_at = {i: float(line["wall_done"]) for line in lines for i in line.get("acked", [])}
    delivered = _delivered(cfg, offset, set(acked_at))
    documents = list(
        local_stack.db[names.COLLECTION_EVENTS].find({"source.tags.run": run}, {"_id": 1, "workload": 1})
    )
    per_seq = Counter(doc.get("workload", {}).get("seq") for doc in documents)
    stored = {doc["_id"] for doc in documents}
    archived = Counter(
        i
        for ids in s3.archived_ids(
            local_stack.s3(), {}, keep=lambda d: d["_id"] in acked_at, since=since
        ).values()
        for i in ids
    )
    rows = _per_minute(start, minutes, acked_at, delivered, memory)
    summary = {
        "minutes": minutes,
        "rate": rate,
        "acknowledged": len(acked_at),
        "stored": len(stored),
        "stored_twice": sum(1 for n in per_seq.values() if n > 1),
        "archived": len(archived),
        "archived_twice": sum(1 for n in archived.values() if n > 1),
    }
    _report(rows, summary)

    lost = set(acked_at) - stored
    assert len(acked_at) >= 0.95 * minutes * per_minute, (
        f"{len(acked_at)} of {minutes * per_minute} events acknowledged: the API fell behind {rate:.0f}/s"
    )
    assert not lost, f"{len(lost)} acknowledged events not stored, e.g. {sorted(lost)[:5]}"
    duplicated = {seq: n for seq, n in per_seq.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events stored more than once (by workload.seq)"
    assert set(acked_at) <= set(archived) and max(archived.values()) == 1, (
        f"{len(set(acked_at) - set(archived))} acknowledged events not archived, "
        f"{sum(1 for n in archived.values() if n > 1)} archived twice"
    )
    for service in pids:
        growth = _growth([m[service] for m in memory])
        assert growth is not None, f"no memory samples of {service}: did it stop?"
        assert growth <= MAX_GROWTH, (
            f"{service}'s memory grew {growth:.0%} after the warm-up (limit {MAX_GROWTH:.0%})"
        )


def _delivered(cfg: Any, offset: int, wanted: set[str]) -> dict[str, float]:
    """Event id -> when the worker logged it delivered (bounded wait for the last ones)."""
    delivered: dict[str, float] = {}
    deadline = time.monotonic() + SETTLE_S
    while True:
        for line in log_lines(cfg, "batch delivered", offset, "worker"):
            when = dt.datetime.fromisoformat(line["ts"]).timestamp()
            for event_id in line.get("event_ids", []):
                delivered.setdefault(event_id, when)
        if wanted <= delivered.keys() or time.monotonic() > deadline:
            return delivered
        time.sleep(2.0)


def _growth(samples: list[float | None]) -> float | None:
    """Memory at the end (mean of the last three samples) against just after the warm-up."""
    kept = [s for s in samples[WARM_UP_MINUTES:] if s is not None] or [s for s in samples if s is not None]
    if not kept:
        return None
    return statistics.fmean(kept[-3:]) / kept[0] - 1


def _per_minute(
    start: float,
    minutes: int,
    acked_at: dict[str, float],
    delivered: dict[str, float],
    memory: list[dict[str, float | None]],
) -> list[dict[str, Any]]:
    rows = []
    for minute in range(minutes):
        lo, hi = start + 60 * minute, start + 60 * (minute + 1)
        latencies = sorted(
            max(0.0, delivered[i] - t) for i, t in acked_at.items() if lo <= t < hi and i in delivered
        )
        p99 = loadgen.percentile(latencies, 0.99)
        rows.append(
            {
                "minute": minute + 1,
                "acknowledged": sum(1 for t in acked_at.values() if lo <= t < hi),
                "e2e_p99_ms": None if p99 is None else round(p99 * 1000, 1),
                **{f"{k}_rss_mib": None if v is None else round(v, 1) for k, v in memory[minute + 1].items()},
            }
        )
    return rows


def _report(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """reports/soak.json and soak.md, printed too."""
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "soak.json").write_text(json.dumps({**summary, "minutes_table": rows}, indent=2) + "\n")
    head = "| minute | acknowledged | e2e p99 ms | API RSS MiB | worker RSS MiB |\n"
    head += "| ---: | ---: | ---: | ---: | ---: |\n"
    body = "".join(
        f"| {r['minute']} | {r['acknowledged']} | {r['e2e_p99_ms']} | {r['processor-api_rss_mib']} | "
        f"{r['metadata-worker_rss_mib']} |\n"
        for r in rows
    )
    text = (
        f"# Soak: {summary['minutes']} min at {summary['rate']:.0f} events/s\n\n"
        f"{summary['acknowledged']} acknowledged, {summary['stored']} stored "
        f"({summary['stored_twice']} twice), {summary['archived']} archived "
        f"({summary['archived_twice']} twice)\n\n{head}{body}"
    )
    (REPORTS / "soak.md").write_text(text)
    print("\n" + text)
