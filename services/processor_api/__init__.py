"""CA4 Processor API: the edge service that takes snapshots over HTTPS and publishes them to Kafka."""
