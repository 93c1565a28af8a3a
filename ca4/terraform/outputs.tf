# What the later ca4-* targets read with `terraform output -json`: SSH and tunnels
# (bastion, nodes, K3s API), the services' environment (DocumentDB, S3, EDGE_API_URL).

################################################################################
# Identity
################################################################################

output "aws_region" {
  description = "Region of the stack (the worker's S3_REGION)."
  value       = var.aws_region
}

output "name_prefix" {
  description = "Prefix of every resource name."
  value       = var.name_prefix
}

################################################################################
# SSH, tunnels and K3s bootstrap
################################################################################

output "bastion_public_ip" {
  description = "Elastic IP of the bastion: the SSH jump host for every tunnel (ssh -J ubuntu@<this>)."
  value       = module.bastion.public_ip
}

output "ssh_user" {
  description = "Login user of the bastion and the edge nodes (the AMI's default user)."
  value       = local.ssh_user
}

output "edge_node_private_ips" {
  description = "Private IPs of the K3s edge nodes, in order; the first is the K3s server."
  value       = module.edge_nodes.private_ips
}

output "k3s_server_private_ip" {
  description = "Private IP of the K3s server node (the first edge node)."
  value       = module.edge_nodes.private_ips[0]
}

output "k3s_api_internal_endpoint" {
  description = "K3s API inside the VPC; laptops reach it through the bastion tunnel on https://127.0.0.1:16443."
  value       = "https://${module.edge_nodes.private_ips[0]}:6443"
}

################################################################################
# DocumentDB (the worker's MONGO_URI and MONGO_DATABASE)
################################################################################

output "documentdb_endpoint" {
  description = "Writer endpoint of the DocumentDB cluster (reachable from the edge nodes only)."
  value       = module.documentdb.endpoint
}

output "documentdb_port" {
  description = "Port of the DocumentDB cluster."
  value       = module.documentdb.port
}

output "documentdb_database" {
  description = "Database the worker writes (MONGO_DATABASE)."
  value       = local.database_name
}

output "documentdb_uri_options" {
  description = "Query string every DocumentDB MONGO_URI needs: TLS with the AWS CA bundle (mounted as global-bundle.pem), the rs0 replica set, no retryable writes."
  value       = local.documentdb_uri_options
}

output "documentdb_ca_bundle_url" {
  description = "Where the AWS RDS/DocumentDB CA bundle (global-bundle.pem) is published."
  value       = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
}

output "mongo_uri" {
  description = "The worker's complete MONGO_URI, password included: render it into the ca4-mongo-credentials Secret, never into a file in git."
  value       = "mongodb://${urlencode(var.db_username)}:${urlencode(var.db_password)}@${module.documentdb.endpoint}:${module.documentdb.port}/?${local.documentdb_uri_options}"
  sensitive   = true
}

################################################################################
# S3 archive (the worker's S3_* variables)
################################################################################

output "s3_bucket_name" {
  description = "Name of the archive bucket (S3_BUCKET)."
  value       = module.archive.bucket_name
}

output "s3_bucket_url" {
  description = "The archive as an S3 URL, prefix included (for aws s3 ls)."
  value       = "s3://${module.archive.bucket_name}/${var.archive_prefix}"
}

output "s3_prefix" {
  description = "Key prefix inside the archive bucket (S3_PREFIX); raw/ and enriched/ are under it."
  value       = var.archive_prefix
}

################################################################################
# The public Processor API
################################################################################

output "edge_api_url" {
  description = "EDGE_API_URL for producers (Colab, collectors): the Processor API's public HTTPS address."
  value       = module.edge_api.url
}

output "edge_api_ca_certificate_pem" {
  description = "CA that signed the API certificate when no api_certificate_arn was given: producers trust it with CA4_CA_BUNDLE; make ca4-platform-setup writes it to kubeconfigs/ca4-api-ca.pem. Null with your own certificate."
  value       = module.edge_api.ca_certificate_pem
}

output "edge_api_lb_dns_name" {
  description = "DNS name of the API load balancer (the target of a CNAME for api_domain_name)."
  value       = module.edge_api.lb_dns_name
}

output "edge_api_lb_zone_id" {
  description = "Hosted zone of the API load balancer (for a Route 53 alias record)."
  value       = module.edge_api.lb_zone_id
}
