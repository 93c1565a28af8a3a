"""The rehearsal cluster, started once for the session in a state folder of its own.

It needs root (namespaces, mounts, containerd) and the Debian packages of ``make
rehearsal-packages``; ``make test`` installs them. Building the binaries the first time takes
about 12 minutes on two cores (the stand-in images about 5 more), in the nox session before
pytest (cached in ~/.cache/ca4/rehearsal afterwards).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.config import default_cache_dir
from rehearsal import host, topology
from rehearsal.cluster import Cluster
from rehearsal.clusterbase import Settings
from rehearsal.pins import REPO
from tests.rehearsal.hoststate import HostState


@pytest.fixture(scope="session")
def before() -> HostState:
    """This machine as it was before the rehearsal started."""
    return HostState.read()


@pytest.fixture(scope="session")
def cluster(before: HostState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running rehearsal cluster (CA4_REHEARSAL_NODES nodes, default 1); stopped at the end.

    ``CA4_REHEARSAL_REUSE=1`` (for working on these tests): use the cluster ``make rehearsal-up``
    started, and leave it running (test_teardown stops it, so deselect that one).
    """
    if os.environ.get("CA4_REHEARSAL_REUSE") == "1":
        reused = Cluster(Settings.from_env(REPO, default_cache_dir()))
        reused.images = reused._images()
        yield reused
        return
    if os.geteuid() != 0:
        pytest.fail("the rehearsal cluster needs root (network namespaces, mounts, containerd)")
    state = tmp_path_factory.mktemp("rehearsal")
    if found := topology.leftovers() + host.leftover_cgroups(topology.PREFIX):
        if topology.busy():
            pytest.fail(f"a rehearsal cluster is running here ({found[:3]}): make rehearsal-down first")
        # what a killed run left (its processes ended, e.g. with the CI session before):
        # namespaces, links and cgroups only, which a down of the largest size removes
        Cluster(Settings(state=Path(state) / "orphans", cache=default_cache_dir(), nodes=3)).down()
    nodes = int(os.environ.get("CA4_REHEARSAL_NODES", "") or "1")
    it = Cluster(Settings(state=Path(state), cache=default_cache_dir(), nodes=nodes))
    try:
        it.up()
        yield it
    finally:
        it.down()
