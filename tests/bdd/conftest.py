"""Gherkin features: the target they run against and every step definition."""

from __future__ import annotations

import pytest

from tests.bdd.steps.clients import *  # noqa: F403 - pytest-bdd step fixtures must be visible here
from tests.bdd.steps.common import *  # noqa: F403
from tests.bdd.steps.db import *  # noqa: F403
from tests.bdd.steps.e2e import *  # noqa: F403
from tests.bdd.steps.kafka import *  # noqa: F403
from tests.bdd.steps.preflight import *  # noqa: F403
from tests.bdd.steps.resilience import *  # noqa: F403
from tests.bdd.steps.security import *  # noqa: F403
from tests.bdd.targets.base import Target


@pytest.fixture(scope="session")
def verification_target(request: pytest.FixtureRequest) -> Target:
    """``--target local``: the session's local stack; ``--target live``: the tunneled cluster."""
    if request.config.getoption("--target") == "live":
        from tests.bdd.targets.live import LiveTarget  # noqa: PLC0415 - live needs the kubernetes client

        target = LiveTarget()
        target.open_tunnels()
        return target
    from tests.bdd.targets.local import LocalTarget  # noqa: PLC0415

    return LocalTarget(request.getfixturevalue("local_stack").cfg)
