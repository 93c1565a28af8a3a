"""The producer's client for the Processor API: the only way a producer reaches CA4.

It talks HTTPS + bearer token to ``POST /metadata`` and nothing else (never Kafka, never
the database). Delivery is exactly-once from the producer's side: every event gets its
``event_id`` before the first attempt, retries reuse it, and the worker stores one
document per id. Retries back off exponentially with full jitter on connection errors,
timeouts, 429 and 5xx-unavailable answers (honouring ``Retry-After``); other 4xx answers
are the producer's mistake and raise at once with a readable message.

The URL and the token come from the arguments, else the environment (``EDGE_API_URL``,
``CA4_API_TOKEN``), else Colab secrets of the same names (see ``credentials``). So does
``CA4_CA_BUNDLE``: the CA of a stack that signs its own certificate, trusted in addition to
the public roots (see ``tls``). A certificate that fails verification is not transient: the
client stops at once and says to set ``CA4_CA_BUNDLE``, instead of retrying.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ca4_events.ids import uuid7
from ca4_events.schema import GpuMetadataEvent
from ca4_producer import credentials, tls
from ca4_producer.credentials import TOKEN_ENV, URL_ENV

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# the API's defaults (API_MAX_BATCH_EVENTS, API_MAX_BODY_BYTES), with room for the envelope
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1_000_000

__all__ = [
    "TOKEN_ENV",
    "URL_ENV",
    "Ca4Client",
    "Ca4ClientError",
    "Ca4Unavailable",
    "Delivery",
    "Prepared",
    "chunks",
    "prepare",
]


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
        ca_bundle: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        secrets: credentials.SecretReader = credentials.colab_secret,
    ) -> None:
        url = credentials.resolve(URL_ENV, base_url, secrets=secrets)
        key = credentials.resolve(TOKEN_ENV, token, secrets=secrets)
        ca = credentials.resolve(tls.CA_BUNDLE_ENV, ca_bundle, secrets=secrets)
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
        self.ca_origin = ca.origin
        # what the API's certificate is checked against, for people: never the PEM text itself
        self.trust = (
            f"public roots + {tls.describe(ca.value)} (from {ca.origin})" if ca.value else "public roots"
        )
        try:
            verify = tls.ssl_context(ca.value)
        except tls.CaBundleError as exc:
            raise Ca4ClientError(f"{exc} (from {ca.origin})") from None
        self._max_attempts = max(1, max_attempts)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            verify=verify,
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
        return self.send(prepare([event]), envelope=False)

    def post_batch(self, events: Sequence[GpuMetadataEvent]) -> Delivery:
        """Deliver several events in one request (202 all stored, 207 some refused).

        Items the API refused as invalid are reported in ``Delivery.refused``; items it could
        not hand to Kafka (a per-item 503 inside a 207) are sent again, alone and with the
        same ids, within the same attempt budget as a whole-request retry.
        """
        return self.send(prepare(events))

    def post_many(
        self,
        events: Sequence[GpuMetadataEvent],
        *,
        batch_size: int = 100,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> list[Delivery]:
        """Deliver any number of events in batches that fit the API's limits (count and body size)."""
        return [self.send(chunk) for chunk in chunks(prepare(events), batch_size, max_batch_bytes)]

    def send(self, items: Sequence[Prepared], *, envelope: bool = True) -> Delivery:
        """One request with ``items`` (``{"events": [...]}``, or the bare event with ``envelope=False``).

        One retry loop serves whole-request failures (transport errors, 429, 5xx-unavailable)
        and items a 207 left unacknowledged; both back off exponentially with full jitter,
        or as long as ``Retry-After`` says. Raises ``Ca4Unavailable`` only when no answer
        accepted anything; once a 207 accepted part of the batch, what is still pending when
        the attempts run out comes back in ``Delivery.refused`` with status 503, beside the
        accepted ids, so nothing is lost from view. ``Delivery.body`` is the last answer.
        """
        if not items:
            return Delivery(status=202, event_ids=[], attempts=0)
        if not envelope and len(items) != 1:
            raise ValueError("envelope=False sends exactly one event")
        ids = [item.event_id for item in items]
        pending = list(range(len(items)))
        refused: dict[int, dict[str, Any]] = {}
        answered: dict[str, Any] | None = None  # the last 202/207 body: something was accepted
        delay = self._backoff_initial
        problem = ""
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            body = (
                items[0].json
                if not envelope
                else b'{"events":[' + b",".join(items[i].json for i in pending) + b"]}"
            )
            status, payload, wait, problem = self._post_once(body)
            if status == 202:
                answered, pending = payload, []
                break
            if status == 207:
                answered = payload
                pending = self._settle_items(payload, pending, ids, refused)
                if not pending:
                    break
                problem = f"{len(pending)} events not acknowledged by Kafka (207)"
            elif status is not None and status not in RETRY_STATUSES:
                raise Ca4ClientError(_explain(status, payload), status, payload)
            if attempt == self._max_attempts:
                break
            self._wait_to_retry(attempt, delay, wait, problem, len(pending))
            delay = min(delay * 2, self._backoff_max)
        if pending and answered is None:
            raise Ca4Unavailable(f"gave up after {attempt} attempts; last problem: {problem}")
        return _delivery(ids, pending, refused, answered, attempt)

    def _wait_to_retry(
        self, attempt: int, delay: float, wait: float | None, problem: str, pending: int
    ) -> None:
        """Sleep ``Retry-After`` when the server said, else a full-jitter pause up to ``delay``."""
        # full jitter keeps a fleet of producers from retrying in lock-step
        pause = wait if wait is not None else random.uniform(0, delay)  # noqa: S311
        log.warning(
            "delivery attempt failed, retrying",
            extra={"attempt": attempt, "problem": problem, "pending": pending, "retry_in_s": round(pause, 3)},
        )
        self._sleep(pause)

    def _post_once(self, body: bytes) -> tuple[int | None, dict[str, Any], float | None, str]:
        """One POST: (status or None on a transport error, body, Retry-After, the problem in words)."""
        try:
            resp = self._http.post("/metadata", content=body, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            failure = tls.verify_failure(exc)
            if failure is not None:
                raise Ca4ClientError(self._untrusted(failure)) from None
            return None, {}, None, f"{type(exc).__name__}: {exc}"
        payload = _json(resp)
        return resp.status_code, payload, _retry_after(resp), f"HTTP {resp.status_code}: {_detail(payload)}"

    def _untrusted(self, failure: ssl.SSLCertVerificationError) -> str:
        reason = failure.verify_message or failure.reason or str(failure)
        return (
            f"the API's TLS certificate at {self.base_url} is not trusted ({reason}; checked against "
            f"{self.trust}). A CA4 stack without api_certificate_arn signs its own certificate: set "
            f"{tls.CA_BUNDLE_ENV} (environment or Colab secret) to its CA, as a file path or the PEM "
            "text: 'terraform -chdir=ca4/terraform output -raw edge_api_ca_certificate_pem', which "
            f"'make ca4-platform-setup' also writes to {tls.DEFAULT_CA_FILE}. Not retried: "
            "retrying cannot fix a certificate."
        )

    @staticmethod
    def _settle_items(
        payload: dict[str, Any], pending: list[int], ids: list[str], refused: dict[int, dict[str, Any]]
    ) -> list[int]:
        """Apply a 207's per-item results: refused items are recorded; the retryable ones come back."""
        retry: list[int] = []
        for item in payload.get("results") or []:
            pos = pending[int(item["index"])]
            status = int(item.get("status", 0))
            if status in RETRY_STATUSES:
                retry.append(pos)
            elif status != 202:
                refused[pos] = {**item, "index": pos, "event_id": ids[pos]}
        return retry


@dataclass(frozen=True, slots=True)
class Prepared:
    """One event with its id fixed and its JSON encoded once, ready to be sent (and re-sent)."""

    event_id: str
    json: bytes


def prepare(events: Sequence[GpuMetadataEvent]) -> list[Prepared]:
    """Fix each event's id (a retry can never become a second record) and encode it once."""
    prepared = []
    for given in events:
        event = given if given.event_id else given.model_copy(update={"event_id": uuid7()})
        prepared.append(Prepared(str(event.event_id), event.model_dump_json(exclude_none=True).encode()))
    return prepared


def chunks(
    items: Sequence[Prepared], batch_size: int = 100, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[Sequence[Prepared]]:
    """Consecutive slices of ``items`` within the API's limits: events per request and body bytes."""
    batch_size = max(1, min(batch_size, MAX_BATCH_EVENTS))
    start, size = 0, 0
    for end, item in enumerate(items):
        grows = len(item.json) + 1
        if end > start and (end - start >= batch_size or size + grows > max_bytes):
            yield items[start:end]
            start, size = end, 0
        size += grows
    if start < len(items):
        yield items[start:]


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


def _delivery(
    ids: list[str],
    pending: list[int],
    refused: dict[int, dict[str, Any]],
    answered: dict[str, Any] | None,
    attempts: int,
) -> Delivery:
    """The outcome of ``send``: what is still pending after the last attempt is refused with 503."""
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
        body=answered or {},
        refused=[refused[pos] for pos in sorted(refused)],
    )
