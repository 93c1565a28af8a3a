"""A readable report of a verification run: feature -> scenario -> step, with status and timing.

pytest-bdd's cucumber JSON and pytest's JUnit XML are for machines; this Markdown file is
for the platform engineer who ran ``make ca4-verify-e2e`` and wants to know what passed,
what failed with which message, and why something was skipped. Enabled with
``--bdd-report=PATH`` (the nox sessions pass ``reports/verify-<target>.md``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.bdd.strict import SEPARATOR, STRICT_KEY, skip_reason


@dataclass
class StepResult:
    """One step of one scenario run."""

    keyword: str
    text: str
    status: str = "not run"
    seconds: float = 0.0
    message: str = ""


@dataclass
class ScenarioResult:
    """One scenario run (an outline's example is its own run)."""

    feature: str
    name: str
    steps: list[StepResult]
    status: str = "passed"
    seconds: float = 0.0
    message: str = ""
    missing: str = ""  # the prerequisite a skip named (what was missing and how to get it)
    started: float = field(default_factory=time.monotonic)


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class MarkdownReport:
    """Collects scenario results through pytest-bdd's hooks and writes them at the end."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self.results: dict[str, ScenarioResult] = {}
        self._step_started = 0.0
        self._run_started = time.monotonic()

    def _current(self, request: pytest.FixtureRequest) -> ScenarioResult | None:
        return self.results.get(request.node.nodeid)

    @pytest.hookimpl
    def pytest_bdd_before_scenario(self, request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
        """Start a scenario: every step is 'not run' until it runs."""
        if not self.results:  # other tests may run first in the same session (nox -s integration)
            self._run_started = time.monotonic()
        callspec = getattr(request.node, "callspec", None)
        values: list[str] = []
        for value in callspec.params.values() if callspec else []:
            # an outline's example row arrives as one dict of column -> value
            values += [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
        suffix = f" [{', '.join(values)}]" if values else ""
        steps = [StepResult(s.keyword, s.name) for s in scenario.steps]
        self.results[request.node.nodeid] = ScenarioResult(feature.name, scenario.name + suffix, steps)

    @pytest.hookimpl
    def pytest_bdd_before_step(self, request: pytest.FixtureRequest, step: Any) -> None:
        """Time the step."""
        self._step_started = time.monotonic()

    def _step(self, request: pytest.FixtureRequest, step: Any) -> StepResult | None:
        current = self._current(request)
        if current is None:
            return None
        for result in current.steps:
            if result.text == step.name and result.status == "not run":
                return result
        return None

    @pytest.hookimpl
    def pytest_bdd_after_step(self, request: pytest.FixtureRequest, step: Any) -> None:
        """A step passed."""
        result = self._step(request, step)
        if result:
            result.status, result.seconds = "passed", time.monotonic() - self._step_started

    @pytest.hookimpl
    def pytest_bdd_step_error(self, request: pytest.FixtureRequest, step: Any, exception: Exception) -> None:
        """A step failed."""
        result = self._step(request, step)
        if result:
            result.status, result.seconds = "FAILED", time.monotonic() - self._step_started
            result.message = _short(f"{type(exception).__name__}: {exception}")

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """The scenario's outcome; skips carry their reason."""
        current = self.results.get(report.nodeid)
        if current is None:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            current.seconds = time.monotonic() - current.started
            strict = dict(report.user_properties).get(STRICT_KEY)
            if report.skipped or strict:
                current.status = "FAILED" if strict else "skipped"
                current.missing = str(strict or skip_reason(report))
                current.message = _short(
                    f"required check could not run: {current.missing}" if strict else current.missing
                )
                for step in current.steps:
                    if step.status == "not run":
                        step.status = "FAILED (could not run)" if strict else "skipped"
                        break
            elif report.failed:
                current.status = "FAILED"
                failed = next((s for s in current.steps if s.status == "FAILED"), None)
                current.message = failed.message if failed else _short(str(report.longrepr), 600)

    def render(self) -> str:
        """The Markdown text."""
        results = list(self.results.values())
        counts = {k: sum(1 for r in results if r.status == k) for k in ("passed", "FAILED", "skipped")}
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"# CA4 verification report: {self.target}",
            "",
            f"{now}; target **{self.target}**; {len(results)} scenarios: {counts['passed']} passed, "
            f"{counts['FAILED']} failed, {counts['skipped']} skipped; "
            f"{time.monotonic() - self._run_started:.1f} s",
            "",
            "| feature | passed | failed | skipped |",
            "| --- | ---: | ---: | ---: |",
        ]
        features: dict[str, list[ScenarioResult]] = {}
        for r in results:
            features.setdefault(r.feature, []).append(r)
        for name, scenarios in features.items():
            c = {k: sum(1 for r in scenarios if r.status == k) for k in ("passed", "FAILED", "skipped")}
            lines.append(f"| {name} | {c['passed']} | {c['FAILED']} | {c['skipped']} |")
        missing: dict[str, int] = {}
        for r in results:
            for reason in r.missing.split(SEPARATOR) if r.missing else []:
                missing[reason] = missing.get(reason, 0) + 1
        if missing:
            lines += ["", "## What was missing", "", "One line per prerequisite (scenarios it stopped):", ""]
            lines += [f"- {reason} ({n})" for reason, n in missing.items()]
        for name, scenarios in features.items():
            lines += ["", f"## {name}"]
            for r in scenarios:
                lines += ["", f"### {r.status}: {r.name} ({r.seconds:.2f} s)"]
                if r.message:
                    lines += ["", f"> {r.message}"]
                lines += ["", "| step | status | ms | message |", "| --- | --- | ---: | --- |"]
                for s in r.steps:
                    message = s.message.replace("|", "\\|")
                    lines.append(
                        f"| {s.keyword} {s.text} | {s.status} | {s.seconds * 1000:.0f} | {message} |"
                    )
        return "\n".join(lines) + "\n"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the file, whatever the outcome."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.render())
