"""Steps shared by several features: the target and a real snapshot."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from pytest_bdd import given

from ca4_events.ids import uuid7
from ca4_events.schema import Source
from ca4_producer.replay import events_from_nvml_series
from tests.bdd.targets.base import Target
from tests.conftest import H200

# verification snapshots carry this tag, so queries and dashboards can leave them out
VERIFY_TAG = {"ca4-verify": "true"}


@given("the pipeline target", target_fixture="target")
def the_pipeline_target(verification_target: Target) -> Target:
    """The target chosen with --target (local or live)."""
    return verification_target


@given("a real H200 snapshot from a Colab-like client", target_fixture="snapshot")
def a_real_h200_snapshot() -> dict[str, Any]:
    """The last load snapshot of the H200 NVML capture, as a Colab session would send it now."""
    source = Source(
        provider="colab", host="colab-verify", session_id=f"verify-{uuid.uuid4().hex[:12]}", tags=VERIFY_TAG
    )
    *_, event = events_from_nvml_series(H200 / "nvml-series.json", source, now=dt.datetime.now(dt.UTC))
    event = event.model_copy(update={"event_id": uuid7()})  # fixed before posting, as the client does
    return dict(json.loads(event.model_dump_json(exclude_none=True)))
