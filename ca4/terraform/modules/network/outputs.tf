output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone: bastion, NAT gateways, API load balancer."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone: K3s edge nodes and DocumentDB."
  value       = aws_subnet.private[*].id
}

output "nat_public_ips" {
  description = "Public addresses the private subnets leave through (for allow-lists elsewhere)."
  value       = aws_eip.nat[*].public_ip
}
