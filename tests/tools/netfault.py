"""A network partition on loopback: packets to some ports dropped (iptables), restored on the way down.

Dropped, not refused: a client's packets vanish, its connections stall and new ones time out,
as across a real partition (a stopped process answers with a reset at once). The rule carries
a comment naming it, so one left behind by a killed test run is recognisable
(``iptables -S OUTPUT | grep ca4-partition``).
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator, Sequence

from tests.tools.run import run


def _iptables() -> str:
    found = shutil.which("iptables")
    if found is None:
        raise AssertionError(
            "iptables not found: the partition scenarios need it (apt-get install -y iptables)"
        )
    return found


@contextlib.contextmanager
def partitioned(ports: Sequence[int], what: str) -> Iterator[None]:
    """TCP packets sent over loopback to ``ports`` are dropped while the block runs."""
    iptables = _iptables()
    comment = f"ca4-partition-{what}-{uuid.uuid4().hex[:6]}"
    rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "multiport", "--dports", ",".join(map(str, ports))]
    rule += ["-m", "comment", "--comment", comment, "-j", "DROP"]
    added = run([iptables, "-w", "10", "-I", *rule], timeout=30)
    if added.returncode != 0:
        raise AssertionError(f"iptables -I {' '.join(rule)}: {added.stderr.strip()}")
    try:
        yield
    finally:
        removed = run([iptables, "-w", "10", "-D", *rule], timeout=30)
        left = run([iptables, "-w", "10", "-C", *rule], timeout=30)
        assert left.returncode != 0, (
            f"the partition rule {comment} is still in place: {removed.stderr.strip()}"
        )
