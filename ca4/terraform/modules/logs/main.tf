# The stack's log bucket: VPC flow logs, the API load balancer's access logs and the
# archive bucket's server access logs, each under its own prefix.

data "aws_partition" "current" {}

# Load balancer access logs are written by an AWS-owned account in the regions opened
# before Jakarta (ap-southeast-3, December 2021), and by the logdelivery service principal
# in every region opened since (ELB user guide, "Attach a policy to your S3 bucket"). The
# data source knows only the former and fails elsewhere with "unsupported region", so it is
# read only where it exists; the service principal is granted everywhere.
data "aws_elb_service_account" "this" {
  count = contains(local.elb_account_regions, var.region) ? 1 : 0
}

locals {
  # the regions with a per-region ELB account (the provider's aws_elb_service_account table)
  elb_account_regions = [
    "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-southeast-1", "ap-southeast-2", "ca-central-1", "cn-north-1", "cn-northwest-1",
    "eu-central-1", "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "eu-west-3",
    "me-south-1", "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1",
    "us-west-1", "us-west-2",
  ]

  flow_log_prefix      = "vpc-flow-logs/"
  lb_access_log_prefix = "lb-access-logs"
  s3_access_log_prefix = "s3-access-logs/"
  source_log_arn       = "arn:${data.aws_partition.current.partition}:logs:${var.region}:${var.account_id}:*"

  # Every bucket of this stack is named <name>-<kind>-<account>-<region> (the archive:
  # <name>-archive-...). Built here rather than passed in: module archive already reads
  # this module's outputs, and a reference back makes checkov stop resolving variables.
  stack_bucket_arn_pattern = "arn:${data.aws_partition.current.partition}:s3:::${var.name}-*-${var.account_id}-${var.region}"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Logs are kept in one region; cross-region replication of logs is not worth its cost for this kit.
  #checkov:skip=CKV_AWS_145:Load balancer access logs can only be delivered to SSE-S3 buckets (AES256), not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log-arrival events; notifications would only add a dangling configuration.
  bucket        = "${var.name}-logs-${var.account_id}-${var.region}"
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = "${var.name}-logs" })
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this.arn}/${local.s3_access_log_prefix}*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }

    # only the buckets of this stack (the archive), not every bucket of the account
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.stack_bucket_arn_pattern]
    }
  }

  # Flow logs land under <prefix>AWSLogs/<account>/vpcflowlogs/..., or, with hive-compatible
  # partitions (module network turns them on), under <prefix>AWSLogs/aws-account-id=<account>/
  # aws-service=vpcflowlogs/... Both layouts of this account are allowed, so switching the
  # option can never make delivery fail quietly.
  statement {
    sid     = "VpcFlowLogsWrite"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.this.arn}/${local.flow_log_prefix}AWSLogs/${var.account_id}/*",
      "${aws_s3_bucket.this.arn}/${local.flow_log_prefix}AWSLogs/aws-account-id=${var.account_id}/*",
    ]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.source_log_arn]
    }
  }

  statement {
    sid       = "VpcFlowLogsAclCheck"
    actions   = ["s3:GetBucketAcl", "s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.source_log_arn]
    }
  }

  # One statement for both writers: the region's ELB account where it has one (an older
  # region), and the logdelivery service principal, which every newer region uses.
  statement {
    sid       = "LoadBalancerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this.arn}/${local.lb_access_log_prefix}/AWSLogs/${var.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }

    dynamic "principals" {
      for_each = data.aws_elb_service_account.this
      content {
        type        = "AWS"
        identifiers = [principals.value.arn]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  # S3 refuses a policy while the public access block is still being applied
  depends_on = [aws_s3_bucket_public_access_block.this]
}
