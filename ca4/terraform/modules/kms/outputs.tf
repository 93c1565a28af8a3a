output "key_arn" {
  description = "ARN of the key, for kms_key_id arguments and IAM policies."
  value       = aws_kms_key.this.arn
}
