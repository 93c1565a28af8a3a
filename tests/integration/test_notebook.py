"""The Colab notebook, executed headlessly (nbclient) against the real local stack in replay mode.

It runs exactly as a Colab user would run it, except for where its inputs come from:
``EDGE_API_URL`` and ``CA4_API_TOKEN`` point at the test session's local API, ``CA4_REPLAY``
replays the H200 captures instead of reading devices, and the producer bundle is built from
this checkout and served over loopback HTTP, so the notebook's download-verify-import path
(the way the client reaches Colab without a clone) runs for real.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca4_events import names
from ca4_producer.bundle import Bundle
from tests.integration.support import Stack
from tests.tools import notebook

H200_UUID = "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"


@pytest.fixture
def served_bundle(tmp_path: Path) -> Iterator[tuple[str, Bundle]]:
    """The producer bundle of this checkout, at an http://127.0.0.1 URL."""
    with notebook.served_bundle(tmp_path / "www") as served:
        yield served


def test_the_notebook_runs_headlessly_and_its_events_are_stored(
    local_stack: Stack,
    h200_dir: Path,
    served_bundle: tuple[str, Bundle],
    tmp_path: Path,
) -> None:
    url, bundle = served_bundle
    env = {
        "EDGE_API_URL": local_stack.cfg.api_url,
        "CA4_API_TOKEN": local_stack.token,
        "CA4_REPLAY": str(h200_dir),
        "CA4_SAMPLE_SECONDS": "1.0",
        "CA4_SAMPLE_INTERVAL": "0.1",
        "CA4_BATCH_SIZE": "4",
        "CA4_PRODUCER_BUNDLE_URL": url,
        "CA4_PRODUCER_BUNDLE_SHA256": bundle.sha256,
    }
    run = notebook.execute(env, tmp_path)
    out, text, result = run.stdout, run.text, run.result

    assert f"sha256={bundle.sha256} (verified)" in text, (
        f"the bundle was not downloaded and verified:\n{text}"
    )
    downloaded = Path(tempfile.gettempdir()) / f"ca4_producer-{bundle.sha256[:12]}.zip"
    assert f"ca4_producer loaded from {downloaded}/ca4_producer/__init__.py" in text, (
        f"the notebook must import the client from the bundle it downloaded, not from the checkout:\n{text}"
    )
    assert f"API {local_stack.cfg.api_url} (URL from environment, token from environment)" in text
    assert "using replay" in text and "note: replaying h200" in text
    table = next(o for o in out if o.startswith("idx"))
    header, row = table.splitlines()[:2]
    assert (
        header.split()[:4] == ["idx", "kind", "name", "uuid"] and H200_UUID in row and "NVIDIA H200" in row
    ), f"accelerators table:\n{table}"
    assert "POST /metadata -> 202  1 event(s)  attempts=1" in text

    assert result["accelerators"] == [H200_UUID]
    assert result["first"]["status"] == 202 and len(result["first"]["event_ids"]) == 1
    batches = result["batches"]
    taken = result["sampling"]["snapshots"]
    # 1 s every 0.1 s is 11 snapshots; a slow batch POST inside the loop may use up the
    # duration one snapshot early (the loop never overruns it), never more
    assert taken in (10, 11), result["sampling"]
    expected = [(202, 4, [])] * (taken // 4) + ([(202, taken % 4, [])] if taken % 4 else [])
    assert [(b["status"], len(b["event_ids"]), b["refused"]) for b in batches] == expected, (
        f"{taken} snapshots in batches of 4: {batches}"
    )

    ids = run.event_ids
    stored = local_stack.wait_for_documents(ids, timeout=60)
    events = local_stack.db[names.COLLECTION_EVENTS]
    assert events.count_documents({"source.session_id": result["session_id"]}) == 1 + taken, (
        "each event stored once"
    )
    first = stored[result["first"]["event_ids"][0]]
    assert first["source"]["tags"] == {"notebook": "ca4_colab_producer", "replay": "true"}
    assert first["workload"]["step"] == "first snapshot"
    assert [a["uuid"] for a in first["accelerators"]] == [H200_UUID]
