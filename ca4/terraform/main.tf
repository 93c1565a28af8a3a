# CA4 in AWS: a VPC over two zones, a bastion, K3s edge nodes, DocumentDB, the S3 archive
# and the public HTTPS entry of the Processor API. Kubernetes itself (K3s, Kafka, the
# services, monitoring) is installed later over SSH by the ca4-* make targets; this root
# module only builds what they run on and outputs what they need (see outputs.tf).

provider "aws" {
  region = var.aws_region
}

data "aws_caller_identity" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first two zones of the sorted list are used (slice below) and new zones get later letters, so the set never expands; availability_zones pins them by name.
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

# Canonical publishes the current Ubuntu LTS AMI id under a public SSM parameter; the
# instances ignore later AMI changes, so a new image never replaces a running node.
data "aws_ssm_parameter" "ami" {
  name = var.ami_ssm_parameter
}

locals {
  azs = length(var.availability_zones) > 0 ? var.availability_zones : slice(data.aws_availability_zones.available.names, 0, 2)

  # The one tag map: every module merges it into every resource it creates.
  tags = merge(var.tags, {
    Project   = "ca4"
    Stack     = var.name_prefix
    ManagedBy = "terraform"
  })

  # insecure_value: an AMI id is public, and a sensitive value would hide it in every plan
  ami_id = data.aws_ssm_parameter.ami.insecure_value

  # Project facts shared with the services (ca4_events.names) and the manifests.
  database_name = "ca4"
  ssh_user      = "ubuntu"

  # DocumentDB has no retryable writes and serves TLS with the AWS CA bundle only.
  documentdb_uri_options = "tls=true&tlsCAFile=global-bundle.pem&replicaSet=rs0&readPreference=secondaryPreferred&retryWrites=false"
}

module "kms" {
  source = "./modules/kms"

  name       = var.name_prefix
  account_id = data.aws_caller_identity.current.account_id
  region     = var.aws_region
  tags       = local.tags
}

module "logs" {
  source = "./modules/logs"

  name           = var.name_prefix
  account_id     = data.aws_caller_identity.current.account_id
  region         = var.aws_region
  retention_days = var.log_retention_days
  force_destroy  = !var.deletion_protection
  tags           = local.tags
}

module "network" {
  source = "./modules/network"

  name                  = var.name_prefix
  vpc_cidr              = var.vpc_cidr
  azs                   = local.azs
  nat_gateway_per_az    = var.nat_gateway_per_az
  flow_log_bucket_arn   = module.logs.bucket_arn
  flow_log_prefix       = module.logs.flow_log_prefix
  flow_log_traffic_type = var.flow_log_traffic_type
  tags                  = local.tags
}

module "security" {
  source = "./modules/security"

  name              = var.name_prefix
  vpc_id            = module.network.vpc_id
  my_ip_cidr        = var.my_ip_cidr
  api_ingress_cidrs = var.api_ingress_cidrs
  api_node_port     = var.api_node_port
  tags              = local.tags
}

module "archive" {
  source = "./modules/archive"

  name              = var.name_prefix
  account_id        = data.aws_caller_identity.current.account_id
  region            = var.aws_region
  prefix            = var.archive_prefix
  lifecycle_rules   = var.archive_lifecycle
  kms_key_arn       = module.kms.key_arn
  access_log_bucket = module.logs.bucket_id
  access_log_prefix = module.logs.s3_access_log_prefix
  force_destroy     = !var.deletion_protection
  tags              = local.tags
}

module "bastion" {
  source = "./modules/bastion"

  name                = var.name_prefix
  ami_id              = local.ami_id
  instance_type       = var.bastion_instance_type
  subnet_id           = module.network.public_subnet_ids[0]
  internet_gateway_id = module.network.internet_gateway_id
  security_group_id   = module.security.bastion_security_group_id
  ssh_key_name        = var.ssh_key_name
  kms_key_arn         = module.kms.key_arn
  tags                = local.tags
}

module "edge_nodes" {
  source = "./modules/edge_nodes"

  name                 = var.name_prefix
  region               = var.aws_region
  node_count           = var.edge_node_count
  ami_id               = local.ami_id
  instance_type        = var.edge_node_instance_type
  root_volume_gb       = var.edge_node_root_volume_gb
  metadata_hop_limit   = var.edge_node_metadata_hop_limit
  subnet_ids           = module.network.private_subnet_ids
  security_group_id    = module.security.nodes_security_group_id
  ssh_key_name         = var.ssh_key_name
  kms_key_arn          = module.kms.key_arn
  archive_bucket_arn   = module.archive.bucket_arn
  archive_key_prefixes = module.archive.key_prefixes
  tags                 = local.tags
}

module "documentdb" {
  source = "./modules/documentdb"

  name                  = var.name_prefix
  subnet_ids            = module.network.private_subnet_ids
  security_group_id     = module.security.db_security_group_id
  master_username       = var.db_username
  master_password       = var.db_password
  instance_class        = var.db_instance_class
  instance_count        = var.db_instance_count
  cluster_parameters    = var.db_cluster_params
  backup_retention_days = var.db_backup_retention_days
  deletion_protection   = var.deletion_protection
  kms_key_arn           = module.kms.key_arn
  log_retention_days    = var.log_retention_days
  tags                  = local.tags
}

module "edge_api" {
  source = "./modules/edge_api"

  name                = var.name_prefix
  vpc_id              = module.network.vpc_id
  public_subnet_ids   = module.network.public_subnet_ids
  security_group_id   = module.security.lb_security_group_id
  target_instance_ids = module.edge_nodes.instance_ids
  target_port         = var.api_node_port
  certificate_arn     = var.api_certificate_arn
  domain_name         = var.api_domain_name
  access_log_bucket   = module.logs.bucket_id
  access_log_prefix   = module.logs.lb_access_log_prefix
  deletion_protection = var.deletion_protection
  rate_limit_per_5min = var.api_rate_limit_per_5min
  kms_key_arn         = module.kms.key_arn
  log_retention_days  = var.log_retention_days
  tags                = local.tags
}
