"""The physical limit of publishing: the Kafka client alone, as the Processor API configures it.

Its own process, like the load generator. Sends ``--records`` copies of the same event
bytes the API publishes (``acks=all``, idempotence, the API's linger and batch size) to a
bench topic the worker does not read, and prints one JSON object: records per second.
``--library`` picks the client: confluent-kafka (the API's default) or kafka-python.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def kafka_python(bootstrap: str, topic: str, value: bytes, records: int, keys: int) -> float:
    """Records per second with kafka-python."""
    from kafka import KafkaProducer  # noqa: PLC0415

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, batch_size=256 * 1024
    )
    producer.send(topic, value=value, key=b"warm-up").get(timeout=30)
    started = time.perf_counter()
    for i in range(records):
        producer.send(topic, value=value, key=b"k%d" % (i % keys))
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - started
    producer.close()
    return records / elapsed


def confluent(bootstrap: str, topic: str, value: bytes, records: int, keys: int) -> float:
    """Records per second with confluent-kafka (librdkafka), the API's default client."""
    from confluent_kafka import Producer  # noqa: PLC0415

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    # connection, metadata and the idempotent producer id outside the timer, as for kafka-python
    producer.produce(topic, value=value, key=b"warm-up")
    if producer.flush(30) != 0:
        raise RuntimeError(f"the warm-up record was not delivered to {topic} within 30 s")
    started = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value=value, key=b"k%d" % (i % keys))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    return records / (time.perf_counter() - started)


LIBRARIES = {"kafka-python": kafka_python, "confluent-kafka": confluent}


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.raw_producer", description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--value-file", required=True, help="the bytes of one event as the API publishes it")
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--keys", type=int, default=8)
    p.add_argument("--library", choices=sorted(LIBRARIES), default="kafka-python")
    args = p.parse_args(argv)
    value = open(args.value_file, "rb").read()  # noqa: SIM115 - tiny file read once
    rate = LIBRARIES[args.library](args.bootstrap, args.topic, value, args.records, args.keys)
    json.dump({"library": args.library, "records": args.records, "value_bytes": len(value),
               "records_per_second": round(rate, 1)}, sys.stdout)  # fmt: skip
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
