"""Durable destinations of the worker: the Mongo-compatible database and the S3 archive."""
