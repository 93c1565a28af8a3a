# DocumentDB 5.0 in the private subnets: TLS required (the worker connects with the AWS
# CA bundle), storage encrypted with the stack's key, audit and profiler logs exported
# to log groups this module owns (so they have a retention and a key).

locals {
  cluster_id = "${var.name}-docdb"
  log_types  = ["audit", "profiler"]

  # Parameters other than the two stated below; those two are always present.
  extra_parameters = { for k, v in var.cluster_parameters : k => v if !contains(["tls", "audit_logs"], k) }
}

resource "aws_docdb_subnet_group" "this" {
  name        = local.cluster_id
  description = "CA4 DocumentDB: private subnets only"
  subnet_ids  = var.subnet_ids

  tags = merge(var.tags, { Name = local.cluster_id })
}

resource "aws_docdb_cluster_parameter_group" "this" {
  name        = local.cluster_id
  family      = "docdb5.0" # must match engine_version 5.0.0
  description = "CA4 DocumentDB 5.0: TLS 1.2 or newer required, audit logs on"

  # TLS required, 1.2 or newer (the family default "enabled" also accepts 1.0 and 1.1).
  # Callers may tighten it to tls1.3+ or fips-140-3; the root variable refuses anything
  # weaker.
  parameter {
    name         = "tls"
    value        = lookup(var.cluster_parameters, "tls", "tls1.2+")
    apply_method = "pending-reboot" # static: applies at the next reboot
  }

  # Audit events (authentication, DDL by default) go to the audit log group.
  parameter {
    name         = "audit_logs"
    value        = lookup(var.cluster_parameters, "audit_logs", "enabled")
    apply_method = "pending-reboot"
  }

  dynamic "parameter" {
    for_each = local.extra_parameters

    content {
      name         = parameter.key
      value        = parameter.value
      apply_method = "pending-reboot" # valid for static and dynamic parameters alike
    }
  }

  tags = merge(var.tags, { Name = local.cluster_id })
}

# Created before the cluster, so DocumentDB writes into groups with a retention and a
# key instead of creating unencrypted ones that never expire.
resource "aws_cloudwatch_log_group" "this" {
  for_each = toset(local.log_types)

  name              = "/aws/docdb/${local.cluster_id}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "${local.cluster_id}-${each.key}" })
}

# A fresh suffix per cluster: after destroy and a new apply, the next destroy's final
# snapshot cannot collide with the previous one (DocumentDB refuses a duplicate name).
resource "random_id" "final_snapshot" {
  byte_length = 4

  keepers = {
    cluster_id = local.cluster_id
  }
}

resource "aws_docdb_cluster" "this" {
  cluster_identifier              = local.cluster_id
  engine                          = "docdb"
  engine_version                  = "5.0.0"
  master_username                 = var.master_username
  master_password                 = var.master_password
  port                            = 27017
  db_subnet_group_name            = aws_docdb_subnet_group.this.name
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.this.name
  vpc_security_group_ids          = [var.security_group_id]

  storage_encrypted = true
  kms_key_id        = var.kms_key_arn

  backup_retention_period      = var.backup_retention_days
  preferred_backup_window      = "02:00-03:00"
  preferred_maintenance_window = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot        = true

  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.cluster_id}-final-${random_id.final_snapshot.hex}"

  enabled_cloudwatch_logs_exports = local.log_types

  tags = merge(var.tags, { Name = local.cluster_id })

  depends_on = [aws_cloudwatch_log_group.this]
}

resource "aws_docdb_cluster_instance" "this" {
  count = var.instance_count

  identifier                 = "${local.cluster_id}-${count.index}"
  cluster_identifier         = aws_docdb_cluster.this.id
  instance_class             = var.instance_class
  ca_cert_identifier         = "rds-ca-rsa2048-g1" # in global-bundle.pem, valid until 2061
  auto_minor_version_upgrade = true
  promotion_tier             = count.index

  tags = merge(var.tags, { Name = "${local.cluster_id}-${count.index}" })
}
