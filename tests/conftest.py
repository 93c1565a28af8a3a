"""Marks every test by its folder, and keeps unit tests away from live services."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
H200 = FIXTURES / "gpu" / "h200"

# fixtures that start or talk to real services; a unit test asking for one is a mistake
LIVE_FIXTURES = frozenset({"local_stack", "stack", "kafka_admin", "mongo_db", "s3_client"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``tests/unit`` -> ``unit``, ``tests/integration`` -> ``integration``."""
    for item in items:
        kind = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        if kind in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, kind))
        if kind == "unit":
            wanted = LIVE_FIXTURES & set(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(
                    f"{item.nodeid} is a unit test but asks for live fixture(s) {sorted(wanted)}; "
                    "move it to tests/integration"
                )


@pytest.fixture(scope="session")
def h200_dir() -> Path:
    """The real H200 captures (copied unchanged from the shared fixtures)."""
    return H200
