output "bastion_security_group_id" {
  description = "Security group of the bastion."
  value       = aws_security_group.bastion.id
}

output "nodes_security_group_id" {
  description = "Security group of the K3s edge nodes."
  value       = aws_security_group.nodes.id
}

output "db_security_group_id" {
  description = "Security group of the DocumentDB cluster."
  value       = aws_security_group.db.id
}

output "lb_security_group_id" {
  description = "Security group of the API load balancer."
  value       = aws_security_group.lb.id
}
