"""Records the worker cannot store go to the DLQ with the reason; the stream goes on."""

from __future__ import annotations

import json
import uuid

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from tests.integration.support import Stack


def test_a_record_that_is_not_json_lands_in_the_dlq_and_the_worker_goes_on(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    key = f"poison-{uuid.uuid4().hex}".encode()
    producer = local_stack.producer()
    sent = producer.send(names.TOPIC, key=key, value=b"{this is not json").get(timeout=10)
    producer.close()

    # an event behind the poison record is stored: the worker went on
    local_stack.wait_for_documents(local_stack.post_events(session_events[:1]))

    dead = local_stack.read_topic(names.DLQ_TOPIC, lambda r: r.key == key)
    headers = dict(dead.headers)
    assert dead.value == b"{this is not json", "the original bytes are kept"
    assert headers[names.HEADER_DLQ_ERROR_TYPE] == b"DecodeError"
    assert b"not UTF-8 JSON" in headers[names.HEADER_DLQ_ERROR]
    assert headers[names.HEADER_DLQ_SOURCE_TOPIC] == names.TOPIC.encode()
    assert int(headers[names.HEADER_DLQ_SOURCE_PARTITION]) == sent.partition
    assert int(headers[names.HEADER_DLQ_SOURCE_OFFSET]) == sent.offset


def test_json_that_is_not_a_valid_event_is_dead_lettered_naming_the_field(local_stack: Stack) -> None:
    key = f"invalid-{uuid.uuid4().hex}".encode()
    value = json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "collected_at": "yesterday",
            "source": {"provider": "colab", "host": "h"},
        }
    )
    producer = local_stack.producer()
    producer.send(names.TOPIC, key=key, value=value.encode()).get(timeout=10)
    producer.close()
    dead = local_stack.read_topic(names.DLQ_TOPIC, lambda r: r.key == key)
    headers = dict(dead.headers)
    assert headers[names.HEADER_DLQ_ERROR_TYPE] == b"ValidationError"
    assert headers[names.HEADER_DLQ_ERROR].startswith(b"not a valid event: collected_at:")
