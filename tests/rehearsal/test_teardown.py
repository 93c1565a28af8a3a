"""Last of the rehearsal tests (files run in name order): down leaves this machine as it was,
and a warm up is quick."""

from __future__ import annotations

import time
from pathlib import Path

from rehearsal.cluster import Cluster
from tests.rehearsal.hoststate import HostState

WARM_UP_LIMIT_S = 60


def test_down_leaves_the_machine_as_it_was_and_a_warm_up_is_quick(
    cluster: Cluster, before: HostState
) -> None:
    """Last: down stops every process it started, removes its namespaces, links, mounts and
    cgroups and restores the kubelet's sysctls; up again (warm) reaches Ready within a minute."""
    pids = {p.name: p.pid() for p in cluster.processes()}
    assert all(pids.values()), f"not every daemon runs before down: {pids}"
    cluster.down()
    alive = {n: p for n, p in pids.items() if p is not None and _alive(p)}
    assert not alive, f"still running after down: {alive}"
    after = HostState.read()
    assert before.differences(after) == [], "\n".join(before.differences(after))
    started = time.monotonic()
    cluster.up()
    took = time.monotonic() - started
    assert took <= WARM_UP_LIMIT_S, f"a warm up took {took:.0f} s to nodes Ready"
    assert all(cluster.node_ready(n.name) for n in cluster.topology.nodes)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
