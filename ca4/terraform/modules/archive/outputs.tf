output "bucket_name" {
  description = "Name of the archive bucket (the worker's S3_BUCKET)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the archive bucket, for IAM policies."
  value       = aws_s3_bucket.this.arn
}

output "key_prefixes" {
  description = "The prefixes the worker writes: <prefix>raw/ and <prefix>enriched/."
  value       = local.key_prefixes
}
