"""Producer side of CA4: the accelerator collector, the API client and the sampling loop.

from ca4_producer import Ca4Client, Collector
with Collector.detect() as collector, Ca4Client() as client:
    client.post_event(collector.snapshot().event)
"""

from ca4_producer.client import Ca4Client, Ca4ClientError, Ca4Unavailable, Delivery
from ca4_producer.collector import Collector, Snapshot
from ca4_producer.sampler import BatchSender, SampleStats, sample

__all__ = [
    "BatchSender",
    "Ca4Client",
    "Ca4ClientError",
    "Ca4Unavailable",
    "Collector",
    "Delivery",
    "SampleStats",
    "Snapshot",
    "sample",
]
