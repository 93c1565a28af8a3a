"""The benchmark's per-event cost table: parts summed, set beside the measured CPU, judged."""

from __future__ import annotations

from typing import Any

from tests.bench import cost_table


def figures(api_cpu_seconds: float) -> dict[str, Any]:
    return {
        "costs": {
            "parse_validate": 30.0, "serialise": 10.0, "record_rest": 2.0, "handler_glue": 5.0,
            "producer": 13.0, "id_assignment": 4.0, "ack_wait_ms": 6.5,
        },
        "empty_batch100": {"server_cpu_seconds": 0.2, "acknowledged": 10_000},  # 20 us/event
        "api_batch100": {
            "api_cpu_seconds": api_cpu_seconds, "acknowledged": 10_000, "cpu_seconds": 0.1,
            "events_per_second": 5000.0,
        },
    }  # fmt: skip


def test_parts_that_add_up_to_the_measured_cost_are_said_to() -> None:
    cost = cost_table.table(figures(api_cpu_seconds=0.85))  # 85 us/event measured, 80 summed
    assert cost["sum_us"] == 80.0 and cost["api_cpu_us_measured"] == 85.0, cost
    assert cost["adds_up"] and cost["sum_vs_measured"] == -0.059, cost
    assert cost["not_in_the_sum"] == {
        "id_assignment_us": 4.0, "ack_wait_ms_per_batch": 6.5,
        "loadgen_cpu_us": 10.0, "wall_us_per_event": 200.0,
    }  # fmt: skip
    text = "\n".join(cost_table.markdown(cost))
    assert "| **sum of the parts** | **80.0** |" in text and "within 15%" in text, text


def test_parts_that_miss_the_measured_cost_say_by_how_much() -> None:
    cost = cost_table.table(figures(api_cpu_seconds=1.2))  # 120 measured, 80 summed
    assert not cost["adds_up"] and cost["sum_vs_measured"] == -0.333, cost
    assert "**does not add up**: -33.3% off" in "\n".join(cost_table.markdown(cost))


def test_a_part_not_measured_never_adds_up() -> None:
    data = figures(api_cpu_seconds=0.8)
    data["empty_batch100"]["server_cpu_seconds"] = None
    assert not cost_table.table(data)["adds_up"]
