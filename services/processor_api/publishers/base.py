"""What every Kafka publisher shares: the record, the ack tracking, the reachability probe.

A publisher answers only when the broker acknowledged every record of a request, or when
the publish timeout ran out. Reachability is probed in the background (a TCP connect to
the bootstrap servers each second): while no broker answers, requests fail fast with 503
instead of each waiting the full timeout, and ``/readyz`` reports not ready. One file per
client library: ``confluent.py`` (the default) and ``kafka_python.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from processor_api import metrics
from processor_api.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One event, serialized, on its way to the topic."""

    event_id: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]  # (name, value), as both clients take them


class KafkaUnavailable(Exception):
    """No broker is reachable: nothing was published."""


class AckTracker:
    """The outcomes of one publish request, settled from a producer thread.

    Per record ``None`` (acked) or a failure reason. The event loop is woken once, when
    the last record is settled, not once per record; whatever is still pending when the
    wait times out becomes ``"AckTimeout"``.
    """

    def __init__(self, count: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._all_settled: asyncio.Future[None] = self._loop.create_future()
        self._outcomes: list[str | None] = ["pending"] * count
        self._remaining = count
        self._lock = threading.Lock()

    def settle(self, index: int, reason: str | None) -> None:
        """Record one outcome (safe from any thread)."""
        with self._lock:
            self._outcomes[index] = reason
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if not self._all_settled.done():
            self._all_settled.set_result(None)

    def first(self) -> str | None:
        """The first record's outcome so far."""
        with self._lock:
            return self._outcomes[0]

    async def wait(self, timeout_s: float) -> list[str | None]:
        """Wait until every record is settled or ``timeout_s`` passed; the outcomes."""
        await asyncio.wait([self._all_settled], timeout=timeout_s)
        with self._lock:
            if self._remaining:
                self._outcomes = ["AckTimeout" if o == "pending" else o for o in self._outcomes]
            return list(self._outcomes)


class Publisher(Protocol):
    """What the routes need from a publisher (a fake one serves the unit tests)."""

    @property
    def ready(self) -> bool:
        """True while a broker is reachable."""
        ...

    async def start(self) -> None:
        """Begin connecting; must not fail when Kafka is down."""

    async def stop(self) -> None:
        """Flush what is in flight and disconnect."""

    async def publish(self, records: Sequence[OutRecord]) -> list[str | None]:
        """Publish and wait for the acks: per record ``None`` (acked) or the failure reason.

        Raises ``KafkaUnavailable`` when nothing could be handed to a broker at all.
        """
        ...


def _parse_hostport(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port or 9092))


async def probe_bootstrap(servers: Sequence[str], timeout_s: float = 1.0) -> bool:
    """True when any bootstrap server accepts a TCP connection (how readiness is decided)."""
    for server in servers:
        host, port = _parse_hostport(server)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


# room for what the API adds to an event (its id, the headers) on top of the body it accepted
RECORD_HEADROOM_BYTES = 64 * 1024


def max_record_bytes(settings: Settings) -> int:
    """The producer's record size limit: whatever body the API accepts must fit (else a 500)."""
    return settings.api_max_body_bytes + RECORD_HEADROOM_BYTES


class ProbedPublisher:
    """What both publishers share: settings, a reachability probe each second, and the publish
    itself (guards, ack tracking, timing) around each client's ``_hand_over``.

    While no broker answers, requests fail fast with 503 instead of each waiting the full
    timeout, and ``/readyz`` reports not ready. Subclasses react to each probe in
    ``_on_probe`` and publish.
    """

    PROBE_INTERVAL_S = 1.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.kafka_topic
        self._servers = settings.bootstrap_list()
        self._timeout_s = settings.api_publish_timeout_seconds
        self._max_record_bytes = max_record_bytes(settings)
        self._reachable = False
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """A broker answered the last probe."""
        return self._reachable

    async def start(self) -> None:
        """Probe Kafka now, then every second in the background."""
        await self._probe_once()
        self._probe_task = asyncio.create_task(self._probe_loop(), name="kafka-probe")

    async def _stop_probing(self) -> None:
        if self._probe_task:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.PROBE_INTERVAL_S)
            try:
                await self._probe_once()
            except Exception:  # the probe must never die; log and try again
                log.exception("kafka probe failed")

    async def _probe_once(self) -> None:
        reachable = await probe_bootstrap(self._servers)
        if reachable != self._reachable:
            log.info("kafka reachability changed", extra={"kafka_reachable": reachable})
        self._reachable = reachable
        await self._on_probe(reachable)
        metrics.KAFKA_READY.set(1 if self.ready else 0)

    async def _on_probe(self, reachable: bool) -> None:
        """Called after each probe (the kafka-python publisher connects its producer here)."""

    async def publish(self, records: Sequence[OutRecord]) -> list[str | None]:
        """Hand every record to the client and wait for its ack (or the publish timeout):
        per record ``None`` (acked) or the failure reason."""
        if not records:
            return []
        if not self.ready:
            raise KafkaUnavailable("no Kafka broker is reachable")
        acks = AckTracker(len(records))
        started = time.perf_counter()
        await self._hand_over(records, acks)
        outcomes = await acks.wait(self._timeout_s + 2)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        return outcomes

    async def _hand_over(self, records: Sequence[OutRecord], acks: AckTracker) -> None:
        """Give the records to the client, which settles ``acks`` as the broker answers;
        raise ``KafkaUnavailable`` when none of them could be handed over."""
        raise NotImplementedError
