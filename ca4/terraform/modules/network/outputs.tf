output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "internet_gateway_id" {
  description = "Internet gateway of the VPC (public addresses need it before they associate)."
  value       = aws_internet_gateway.this.id
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone: bastion, NAT gateways, API load balancer."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone: K3s edge nodes and DocumentDB."
  value       = aws_subnet.private[*].id
}
