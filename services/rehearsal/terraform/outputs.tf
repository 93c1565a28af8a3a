# Exactly the outputs of ca4/terraform/outputs.tf, names and types (tests/unit compares them),
# from the rehearsal's hosts: the later ca4-* targets read them with `terraform output -json`
# as they do after a real apply.

output "aws_region" {
  description = "Region of the stack (the worker's S3_REGION)."
  value       = var.aws_region
}

output "name_prefix" {
  description = "Prefix of every resource name."
  value       = var.name_prefix
}

output "bastion_public_ip" {
  description = "The bastion: the SSH jump host for every tunnel."
  value       = var.bastion_address
}

output "ssh_user" {
  description = "Login user of the bastion and the edge nodes."
  value       = var.ssh_user
}

output "edge_node_private_ips" {
  description = "Private addresses of the edge nodes, in order; the first is the K3s server."
  value       = var.edge_node_addresses
}

output "k3s_server_private_ip" {
  description = "Private address of the K3s server node (the first edge node)."
  value       = var.edge_node_addresses[0]
}

output "k3s_api_internal_endpoint" {
  description = "K3s API inside the rehearsal's network; reached through the bastion tunnel on https://127.0.0.1:16443."
  value       = "https://${var.edge_node_addresses[0]}:6443"
}

output "documentdb_endpoint" {
  description = "Host of the DocumentDB stand-in (reachable from the nodes only)."
  value       = var.documentdb_host
}

output "documentdb_port" {
  description = "Its port."
  value       = var.documentdb_port
}

output "documentdb_database" {
  description = "Database the worker writes (MONGO_DATABASE)."
  value       = local.database_name
}

output "documentdb_uri_options" {
  description = "Query string of MONGO_URI: TLS with the stand-in's CA as global-bundle.pem, no retryable writes."
  value       = var.documentdb_uri_options
}

output "documentdb_ca_bundle_url" {
  description = "Where the CA bundle is published in AWS (the rehearsal builds its own CA into the image instead)."
  value       = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
}

output "mongo_uri" {
  description = "The worker's complete MONGO_URI, password included (sensitive, as in ca4/terraform)."
  value       = "mongodb://${urlencode(var.db_username)}:${urlencode(var.db_password)}@${var.documentdb_host}:${var.documentdb_port}/?${var.documentdb_uri_options}"
  sensitive   = true
}

output "s3_bucket_name" {
  description = "Name of the archive bucket (S3_BUCKET)."
  value       = var.s3_bucket_name
}

output "s3_bucket_url" {
  description = "The archive as an S3 URL, prefix included."
  value       = "s3://${var.s3_bucket_name}/${var.archive_prefix}"
}

output "s3_prefix" {
  description = "Key prefix inside the archive bucket (S3_PREFIX)."
  value       = var.archive_prefix
}

output "edge_api_url" {
  description = "EDGE_API_URL for producers: the Processor API's HTTPS address (Traefik's websecure entrypoint)."
  value       = "https://${var.edge_api_host}"
}

output "edge_api_ca_certificate_pem" {
  description = "CA that signed the API certificate: producers trust it with CA4_CA_BUNDLE."
  value       = var.edge_api_ca_certificate_pem
}

output "edge_api_lb_dns_name" {
  description = "The load balancer's stand-in: the API's host name."
  value       = var.edge_api_host
}

output "edge_api_lb_zone_id" {
  description = "Hosted zone of the load balancer (none in the rehearsal: a fixed marker)."
  value       = "rehearsal"
}
