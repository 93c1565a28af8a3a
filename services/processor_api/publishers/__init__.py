"""Publishing to Kafka, the only side effect of the Processor API: ``base.py`` holds what
every publisher shares, one module per client library holds the rest. The confluent-kafka
publisher is imported only when chosen (``KAFKA_CLIENT``), so librdkafka loads only then."""

from processor_api.publishers.base import (
    AckTracker,
    KafkaUnavailable,
    OutRecord,
    ProbedPublisher,
    Publisher,
    max_record_bytes,
)
from processor_api.publishers.kafka_python import KafkaPublisher

__all__ = [
    "AckTracker",
    "KafkaPublisher",
    "KafkaUnavailable",
    "OutRecord",
    "ProbedPublisher",
    "Publisher",
    "max_record_bytes",
]
