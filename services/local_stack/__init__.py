"""The embedded local stack: Kafka (KRaft), FerretDB, moto S3, the API and the worker on loopback."""
