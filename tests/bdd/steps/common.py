"""Steps shared by several features: the target and a real snapshot."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given

from ca4_events.ids import uuid7
from tests.bdd.targets.base import Target
from tests.integration.support import h200_events, to_body

# verification snapshots carry this tag, so queries and dashboards can leave them out
VERIFY_TAG = {"ca4-verify": "true"}


@given("the pipeline target", target_fixture="target")
def the_pipeline_target(verification_target: Target) -> Target:
    """The target chosen with --target (local or live)."""
    return verification_target


@given("a real H200 snapshot from a Colab-like client", target_fixture="snapshot")
def a_real_h200_snapshot() -> dict[str, Any]:
    """The last load snapshot of the H200 NVML capture, as a Colab session would send it now."""
    *_, event = h200_events("colab-verify", "verify", tags=VERIFY_TAG)
    return to_body(event.model_copy(update={"event_id": uuid7()}))  # fixed before posting, as the client does
