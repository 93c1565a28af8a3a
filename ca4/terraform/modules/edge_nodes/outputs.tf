output "instance_ids" {
  description = "Instance IDs of the nodes, node 0 (the K3s server) first."
  value       = aws_instance.this[*].id
}

output "private_ips" {
  description = "Private IPs of the nodes, node 0 (the K3s server) first."
  value       = aws_instance.this[*].private_ip
}

output "role_name" {
  description = "Name of the nodes' IAM role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the nodes' IAM role."
  value       = aws_iam_role.this.arn
}
