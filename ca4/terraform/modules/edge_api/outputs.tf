output "url" {
  description = "EDGE_API_URL: https:// plus domain_name, or the load balancer's DNS name."
  value       = "https://${local.url_host}"
}

output "lb_arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.this.arn
}

output "lb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "lb_zone_id" {
  description = "Hosted zone of the load balancer, for Route 53 alias records."
  value       = aws_lb.this.zone_id
}

output "target_group_arn" {
  description = "Target group of the edge nodes."
  value       = aws_lb_target_group.this.arn
}

output "ca_certificate_pem" {
  description = "The stack's API CA certificate for producers to trust; null when certificate_arn was given."
  value       = local.own_certificate ? tls_self_signed_cert.ca[0].cert_pem : null
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL in front of the API."
  value       = aws_wafv2_web_acl.this.arn
}
