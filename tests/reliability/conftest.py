"""The reliability session: one harness per run of the suite, and its report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.support import Stack
from tests.reliability.harness import Reliability, Scale

REPORTS = Path("reports")


@pytest.fixture(scope="session")
def reliability(local_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reliability]:
    """The harness; writes reports/reliability.json and reliability.md when the session ends."""
    harness = Reliability(local_stack, Scale.from_env(), tmp_path_factory.mktemp("reliability"))
    yield harness
    if harness.rows:
        harness.write_report(REPORTS)
