"""CA4 Metadata Worker: consumes gpu-metadata, enriches, stores in the Mongo-compatible DB, archives to S3."""
