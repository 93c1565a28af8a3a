"""Marks every test by its folder, and keeps unit tests away from live services."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.stack_fixtures"]

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
H200 = FIXTURES / "gpu" / "h200"

# fixtures that start or talk to real services; a unit test asking for one is a mistake.
# verification_target asks for local_stack at run time, so the closure check cannot see it.
LIVE_FIXTURES = frozenset({"local_stack", "docker_stack", "verification_target"})


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--target``: where the Gherkin features run."""
    parser.addoption(
        "--target",
        choices=("local", "live"),
        default="local",
        help="run tests/bdd on the embedded local stack (default) or on the live cluster through its tunnels",
    )
    parser.addoption(
        "--allow-skips",
        action="store_true",
        help="--target live only: let a scenario whose prerequisite is missing skip instead of fail "
        "(lenient, for exploring by hand; the ca4-verify-* targets never pass it)",
    )
    parser.addoption(
        "--bdd-report",
        default=None,
        metavar="PATH",
        help="write a readable Markdown report of the Gherkin scenarios to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the Markdown report when asked for, and strict skips against the live target."""
    if config.getoption("--target") == "live" and not config.getoption("--allow-skips"):
        from tests.bdd.strict import StrictSkips  # noqa: PLC0415 - only live feature runs need it

        config.pluginmanager.register(StrictSkips(), "ca4-strict-skips")
    path = config.getoption("--bdd-report")
    if path:
        from tests.bdd.report import MarkdownReport  # noqa: PLC0415 - only feature runs need it

        config.pluginmanager.register(
            MarkdownReport(Path(path), config.getoption("--target")), "ca4-bdd-report"
        )


# every folder holding tests, and the marker its tests get (pyproject's markers explain each);
# a test in a folder missing here is refused, so a new suite cannot slip in unmarked
FOLDER_MARKS = {
    "unit": "unit",
    "integration": "integration",
    "bdd": "bdd",
    "reliability": "reliability",
    "bench": "bench",
    "rehearsal": "rehearsal",
    "iac": "iac",
    "k8s": "k8s",
    "monitoring": "monitoring",
    "ssh": "ssh",
    "soak": "soak",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its top folder (``FOLDER_MARKS``); refuse a test outside those folders."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(TESTS).parts
        kind = parts[0] if len(parts) > 1 else "(tests/)"
        if kind not in FOLDER_MARKS:
            raise pytest.UsageError(
                f"{item.nodeid} is in {kind}, which tests/conftest.py does not know: add the folder "
                "to FOLDER_MARKS (and its marker to pyproject's markers) or move the test"
            )
        item.add_marker(getattr(pytest.mark, FOLDER_MARKS[kind]))
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
