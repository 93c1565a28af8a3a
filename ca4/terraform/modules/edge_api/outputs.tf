output "url" {
  description = "EDGE_API_URL: https:// plus domain_name, or the load balancer's DNS name."
  value       = "https://${local.url_host}"
}

output "lb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "lb_zone_id" {
  description = "Hosted zone of the load balancer, for Route 53 alias records."
  value       = aws_lb.this.zone_id
}

output "ca_certificate_pem" {
  description = "The stack's API CA certificate for producers to trust; null when certificate_arn was given."
  value       = one(tls_self_signed_cert.ca[*].cert_pem)
}
