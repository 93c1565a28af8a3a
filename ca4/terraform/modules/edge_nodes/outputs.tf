output "instance_ids" {
  description = "Instance IDs of the nodes, node 0 (the K3s server) first."
  value       = aws_instance.this[*].id
}

output "private_ips" {
  description = "Private IPs of the nodes, node 0 (the K3s server) first."
  value       = aws_instance.this[*].private_ip
}
