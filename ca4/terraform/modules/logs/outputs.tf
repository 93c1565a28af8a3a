output "bucket_id" {
  description = "Name of the logs bucket, for logging and access_logs arguments."
  value       = aws_s3_bucket.this.id

  # log deliveries check their permission when they are configured: policy first
  depends_on = [aws_s3_bucket_policy.this]
}

output "bucket_arn" {
  description = "ARN of the logs bucket, for flow log destinations."
  value       = aws_s3_bucket.this.arn

  depends_on = [aws_s3_bucket_policy.this]
}

output "flow_log_prefix" {
  description = "Prefix (ending in /) under which VPC flow logs land."
  value       = local.flow_log_prefix
}

output "lb_access_log_prefix" {
  description = "Prefix (no trailing /, as the load balancer expects) under which its access logs land."
  value       = local.lb_access_log_prefix
}

output "s3_access_log_prefix" {
  description = "Prefix (ending in /) under which S3 server access logs land."
  value       = local.s3_access_log_prefix
}
