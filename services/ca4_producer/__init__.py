"""Producer side of CA4: the API client and event sources (collector, replay)."""

from ca4_producer.client import Ca4Client, Ca4ClientError, Ca4Unavailable, Delivery

__all__ = ["Ca4Client", "Ca4ClientError", "Ca4Unavailable", "Delivery"]
