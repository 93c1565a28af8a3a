"""The producer's client for the Processor API: the only way a producer reaches CA4.

It talks HTTPS + bearer token to ``POST /metadata`` and nothing else (never Kafka, never
the database). Delivery is exactly-once from the producer's side: every event gets its
``event_id`` before the first attempt, retries reuse it, and the worker stores one
document per id. Retries back off exponentially with full jitter on connection errors,
timeouts, 429 and 5xx-unavailable answers (honouring ``Retry-After``); other 4xx answers
are the producer's mistake and raise at once with a readable message.

The URL and the token come from the arguments, else the environment (``EDGE_API_URL``,
``CA4_API_TOKEN``), else Colab secrets of the same names (see ``credentials``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ca4_events.ids import uuid7
from ca4_events.schema import GpuMetadataEvent
from ca4_producer import credentials
from ca4_producer.credentials import TOKEN_ENV, URL_ENV

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# the API's defaults (API_MAX_BATCH_EVENTS, API_MAX_BODY_BYTES), with room for the envelope
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1_000_000

__all__ = ["TOKEN_ENV", "URL_ENV", "Ca4Client", "Ca4ClientError", "Ca4Unavailable", "Delivery"]


class Ca4ClientError(Exception):
    """The API refused the request; retrying the same request cannot help."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Ca4Unavailable(Ca4ClientError):
    """Every attempt failed on a transient condition (network, 429, 503)."""


@dataclass(frozen=True)
class Delivery:
    """The API's answer to one accepted request.

    ``event_ids`` are every id the request carried; ``refused`` holds the batch items the API
    did not accept in the end (``index``, ``event_id``, ``status``, ``errors``/``detail``).
    """

    status: int
    event_ids: list[str]
    attempts: int
    body: dict[str, Any] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted_ids(self) -> list[str]:
        """The ids the API acknowledged (they are in Kafka and will be stored once)."""
        refused = {str(item.get("event_id")) for item in self.refused}
        return [i for i in self.event_ids if i not in refused]


def _with_ids(events: Sequence[GpuMetadataEvent]) -> list[GpuMetadataEvent]:
    # the id is fixed before the first attempt: a retry can never become a second record
    return [e if e.event_id else e.model_copy(update={"event_id": uuid7()}) for e in events]


def _explain(status: int, body: Any) -> str:
    if status == 401:
        return (
            "the API rejected the token (401): set CA4_API_TOKEN (or the Colab secret "
            "CA4_API_TOKEN) to a token listed in the API's API_TOKENS"
        )
    if status == 403:
        return f"the API refused this token for the request (403): {_detail(body)}"
    if status == 413:
        return f"the request is larger than the API accepts (413): {_detail(body)}"
    if status == 422 and isinstance(body, dict):
        lines = [f"  {e.get('field')}: {e.get('message')}" for e in body.get("errors", [])]
        for item in body.get("results", []):
            for e in item.get("errors", []):
                lines.append(f"  events[{item.get('index')}].{e.get('field')}: {e.get('message')}")
        return "the API refused the event as invalid (422):\n" + "\n".join(lines or [_detail(body)])
    return f"the API answered {status}: {_detail(body)}"


def _detail(body: Any) -> str:
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]


class Ca4Client:
    """Posts events to the Processor API with retries; one instance per producer."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = 15.0,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        secrets: credentials.SecretReader = credentials.colab_secret,
    ) -> None:
        url = credentials.resolve(URL_ENV, base_url, secrets=secrets)
        key = credentials.resolve(TOKEN_ENV, token, secrets=secrets)
        if not url.value:
            raise Ca4ClientError(
                f"no API URL: pass base_url, set {URL_ENV} or add the Colab secret {URL_ENV}"
            )
        if not key.value:
            raise Ca4ClientError(
                f"no API token: pass token, set {TOKEN_ENV} or add the Colab secret {TOKEN_ENV}"
            )
        self.base_url = url.value.rstrip("/")
        # where each came from, for people ("environment", "colab secret"); never the token itself
        self.url_origin = url.origin
        self.token_origin = key.origin
        self._max_attempts = max(1, max_attempts)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"Authorization": f"Bearer {key.value}", "User-Agent": "ca4-producer/1"},
        )

    def __enter__(self) -> Ca4Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def post_event(self, event: GpuMetadataEvent) -> Delivery:
        """Deliver one event; returns once the API answered 202 (the event is in Kafka)."""
        (event,) = _with_ids([event])
        body = event.model_dump_json(exclude_none=True).encode()
        return self._post(body, [str(event.event_id)])

    def post_batch(self, events: Sequence[GpuMetadataEvent]) -> Delivery:
        """Deliver several events in one request (202 all stored, 207 some refused).

        Items the API refused as invalid are reported in ``Delivery.refused``; items it could
        not hand to Kafka (a per-item 503 inside a 207) are sent again, alone and with the
        same ids, within the same attempt budget as a whole-request retry.
        """
        if not events:
            return Delivery(status=202, event_ids=[], attempts=0)
        events = _with_ids(events)
        ids = [str(e.event_id) for e in events]
        parts = [e.model_dump_json(exclude_none=True) for e in events]
        pending = list(range(len(events)))
        refused: dict[int, dict[str, Any]] = {}
        attempts = 0
        delay = self._backoff_initial
        last: Delivery | None = None
        while pending and attempts < self._max_attempts:
            body = ('{"events":[' + ",".join(parts[i] for i in pending) + "]}").encode()
            last = self._post(body, [ids[i] for i in pending], self._max_attempts - attempts)
            attempts += last.attempts
            if last.status == 202:
                pending = []
                break
            retry: list[int] = []
            for item in last.body.get("results") or []:
                pos = pending[int(item["index"])]
                status = int(item.get("status", 0))
                if status == 202:
                    continue
                if status in RETRY_STATUSES:
                    retry.append(pos)
                else:
                    refused[pos] = {**item, "index": pos, "event_id": ids[pos]}
            pending = retry
            if pending and attempts < self._max_attempts:
                pause = random.uniform(0, delay)  # noqa: S311 - jitter, not cryptography
                log.warning(
                    "batch partly accepted, retrying the rest",
                    extra={"pending": len(pending), "retry_in_s": round(pause, 3)},
                )
                self._sleep(pause)
                delay = min(delay * 2, self._backoff_max)
        for pos in pending:
            refused[pos] = {
                "index": pos,
                "event_id": ids[pos],
                "status": 503,
                "detail": f"not acknowledged by Kafka after {attempts} attempts; send it again later",
            }
        return Delivery(
            status=207 if refused else 202,
            event_ids=ids,
            attempts=attempts,
            body=last.body if last else {},
            refused=[refused[pos] for pos in sorted(refused)],
        )

    def post_many(
        self,
        events: Sequence[GpuMetadataEvent],
        *,
        batch_size: int = 100,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> list[Delivery]:
        """Deliver any number of events in batches that fit the API's limits (count and body size)."""
        batch_size = max(1, min(batch_size, MAX_BATCH_EVENTS))
        deliveries: list[Delivery] = []
        batch: list[GpuMetadataEvent] = []
        size = 0
        for event in _with_ids(events):
            item = len(event.model_dump_json(exclude_none=True)) + 1
            if batch and (len(batch) >= batch_size or size + item > max_batch_bytes):
                deliveries.append(self.post_batch(batch))
                batch, size = [], 0
            batch.append(event)
            size += item
        if batch:
            deliveries.append(self.post_batch(batch))
        return deliveries

    def _post(self, body: bytes, event_ids: list[str], max_attempts: int | None = None) -> Delivery:
        delay = self._backoff_initial
        last_problem = ""
        limit = max(1, max_attempts or self._max_attempts)
        for attempt in range(1, limit + 1):
            wait: float | None = None
            try:
                resp = self._http.post(
                    "/metadata", content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                payload = _json(resp)
                if resp.status_code in (202, 207):
                    return Delivery(resp.status_code, event_ids, attempt, payload)
                if resp.status_code not in RETRY_STATUSES:
                    raise Ca4ClientError(_explain(resp.status_code, payload), resp.status_code, payload)
                last_problem = f"HTTP {resp.status_code}: {_detail(payload)}"
                wait = _retry_after(resp)
            if attempt == limit:
                break
            # full jitter keeps a fleet of producers from retrying in lock-step
            pause = wait if wait is not None else random.uniform(0, delay)  # noqa: S311
            log.warning(
                "delivery attempt failed, retrying",
                extra={"attempt": attempt, "problem": last_problem, "retry_in_s": round(pause, 3)},
            )
            self._sleep(pause)
            delay = min(delay * 2, self._backoff_max)
        raise Ca4Unavailable(f"gave up after {limit} attempts; last problem: {last_problem}")


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        value = resp.json()
    except ValueError:
        return {"detail": resp.text[:500]}
    return value if isinstance(value, dict) else {"detail": value}


def _retry_after(resp: httpx.Response, cap_s: float = 60.0) -> float | None:
    raw = resp.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return min(max(float(raw), 0.0), cap_s)
    except ValueError:
        return None
