"""The per-event cost table: the parts of POST /metadata (``tests.bench.costs``) beside the API
process's measured CPU per event under load, in microseconds, from one benchmark run.

The parts are summed and compared with the measurement; a sum more than ``TOLERANCE`` off
is reported as such, not hidden. What is not the API process's CPU (the ack wait, the load
generator, the wall time per event on cores shared with the broker) is listed below the sum.
"""

from __future__ import annotations

from typing import Any

TOLERANCE = 0.15

# (key in the costs figures, what it is), in the order a request meets them
PARTS = (
    ("http_framework", "HTTP, uvicorn, FastAPI: the empty handler over HTTP, same bodies, per request / 100"),
    ("parse_validate", "JSON parse + schema validation of a batch of 100 (one call from the bytes)"),
    ("serialise", "serialisation of the Kafka value (the model's serializer)"),
    ("record_rest", "the rest of the record: key, headers"),
    ("handler_glue", "CA4's handler around them: auth, the answer, the log line, metrics"),
    ("producer", "the producer: produce calls, librdkafka's threads, delivery reports (the API's publisher)"),
)  # fmt: skip


def _per_event(seconds: float | None, events: int | None) -> float | None:
    return round(seconds / events * 1e6, 2) if seconds is not None and events else None


def table(figures: dict[str, Any]) -> dict[str, Any]:
    """The table's numbers: each part, their sum, the measured API CPU per event and the verdict."""
    costs = dict(figures["costs"])
    empty = figures["empty_batch100"]
    costs["http_framework"] = _per_event(empty.get("server_cpu_seconds"), empty.get("acknowledged"))
    api = figures["api_batch100"]
    measured = _per_event(api.get("api_cpu_seconds"), api.get("acknowledged"))
    parts = {key: costs.get(key) for key, _ in PARTS}
    total = round(sum(v for v in parts.values() if v is not None), 2)
    off = round(total / measured - 1, 3) if measured else None
    eps = api.get("events_per_second") or 0
    return {
        "parts_us": parts,
        "sum_us": total,
        "api_cpu_us_measured": measured,
        "sum_vs_measured": off,
        "adds_up": off is not None and None not in parts.values() and abs(off) <= TOLERANCE,
        "not_in_the_sum": {
            "id_assignment_us": costs.get("id_assignment"),  # paid only for events sent without an id
            "ack_wait_ms_per_batch": costs.get("ack_wait_ms"),
            "loadgen_cpu_us": _per_event(api.get("cpu_seconds"), api.get("acknowledged")),
            "wall_us_per_event": round(1e6 / eps, 2) if eps else None,
        },
    }


def markdown(cost: dict[str, Any]) -> list[str]:
    """The table as Markdown lines."""
    labels = dict(PARTS)
    lines = [
        "Where the API's CPU goes, per event (batches of 100; microseconds, measured in this run):",
        "",
        "| part | us/event |",
        "| --- | ---: |",
    ]
    lines += [f"| {labels[key]} | {value} |" for key, value in cost["parts_us"].items()]
    verdict = (
        f"within {TOLERANCE:.0%}"
        if cost["adds_up"]
        else f"**does not add up**: {cost['sum_vs_measured']:+.1%} off, more than {TOLERANCE:.0%}"
        if cost["sum_vs_measured"] is not None
        else "**not measured**"
    )
    extra = cost["not_in_the_sum"]
    lines += [
        f"| **sum of the parts** | **{cost['sum_us']}** |",
        f"| **measured: the API process's CPU per event under load** | **{cost['api_cpu_us_measured']}** |",
        "",
        f"The parts add up to the measured cost {verdict}. Not in the sum: event-id assignment "
        f"{extra['id_assignment_us']} us/event (paid only for events sent without an id; the load "
        f"generator sends them), the ack wait {extra['ack_wait_ms_per_batch']} ms per batch of 100 "
        f"(waiting, not CPU), the load generator's own CPU {extra['loadgen_cpu_us']} us/event, and the "
        f"wall time per event at the measured rate, {extra['wall_us_per_event']} us, on cores the API "
        "shares with the broker and the load generator.",
    ]
    return lines
