"""Strict verification: a required check that could not run is a failure, never a pass.

pytest exits 0 when every test is skipped, so a ``make ca4-verify-*`` run without a cluster
would "pass" while verifying nothing. Against ``--target live`` every skipped scenario
is turned into a failure carrying its reason (what was missing and how to get it), and the
run ends with one line per missing prerequisite. ``--allow-skips`` keeps the lenient mode
for exploring by hand (``nox -s live -- --allow-skips``); the make targets never pass it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

STRICT_KEY = "ca4-strict-skip"
SEPARATOR = " | "  # Target.require joins the reasons of one step's missing prerequisites with it


def skip_reason(report: pytest.TestReport) -> str:
    """The text of a skip, without pytest's ``Skipped: `` prefix."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return str(reason).removeprefix("Skipped: ")


class StrictSkips:
    """Fails every skipped test of the run, and lists what was missing at the end."""

    def __init__(self) -> None:
        self.missing: dict[str, list[str]] = {}  # reason -> test ids

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None]:
        """A skip (not an expected failure) becomes a failure with the skip's reason."""
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = skip_reason(report)
        for each in reason.split(SEPARATOR):
            self.missing.setdefault(each, []).append(item.nodeid)
        report.outcome = "failed"
        report.longrepr = f"required check could not run: {reason}"
        report.user_properties.append((STRICT_KEY, reason))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """One line per missing prerequisite, with how many checks it stopped."""
        if not self.missing:
            return
        terminalreporter.section("required checks that could not run (strict: each is a failure)")
        for reason, ids in self.missing.items():
            terminalreporter.write_line(f"{len(ids):3d} check(s): {reason}")
        terminalreporter.write_line("(nox -s live -- --allow-skips runs leniently, for exploring only)")
