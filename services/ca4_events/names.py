"""Names shared by every CA4 component: topics, headers, consumer group, collections.

They live in one place so the API, the worker, the local stack, the manifests' tests and
the verification features cannot drift apart.
"""

from typing import Final

TOPIC: Final = "gpu-metadata"
DLQ_TOPIC: Final = "gpu-metadata.dlq"
CONSUMER_GROUP: Final = "ca4-metadata-worker"

DATABASE: Final = "ca4"
COLLECTION_EVENTS: Final = "gpu_metadata"
COLLECTION_DEVICES: Final = "gpu_devices"

CONTENT_TYPE_JSON: Final = "application/json"

# Kafka record headers written by the Processor API.
HEADER_SCHEMA_VERSION: Final = "schema_version"
HEADER_EVENT_ID: Final = "event_id"
HEADER_CONTENT_TYPE: Final = "content-type"

# Kafka record headers written by the worker on dead-lettered records.
HEADER_DLQ_ERROR: Final = "ca4-error"
HEADER_DLQ_ERROR_TYPE: Final = "ca4-error-type"
HEADER_DLQ_SOURCE_TOPIC: Final = "ca4-source-topic"
HEADER_DLQ_SOURCE_PARTITION: Final = "ca4-source-partition"
HEADER_DLQ_SOURCE_OFFSET: Final = "ca4-source-offset"
