# The archive: gzip JSON Lines the Metadata Worker writes under raw/ and enriched/
# (Hive-style topic=/dt=/hour= partitions). Private, encrypted with the stack's key,
# versioned, TLS only, owner-enforced, aged out by lifecycle rules.

locals {
  kinds        = ["raw", "enriched"]
  key_prefixes = [for k in local.kinds : "${var.prefix}${k}/"]
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:The archive is a secondary copy (DocumentDB holds the data, with backups); cross-region replication would double its cost.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object-created events yet; an unused notification target would be dead configuration.
  bucket        = "${var.name}-archive-${var.account_id}-${var.region}"
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = "${var.name}-archive" })
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
    object_ownership = "BucketOwnerEnforced" # ACLs off: the bucket policy and IAM decide
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  # Re-archiving a batch overwrites the same key on purpose; versions keep the earlier
  # object for a while in case an overwrite was wrong.
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }

    bucket_key_enabled = true # one KMS call per bucket key, not per object
  }
}

resource "aws_s3_bucket_logging" "this" {
  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = var.access_log_prefix

  target_object_key_format {
    partitioned_prefix {
      partition_date_source = "EventTime"
    }
  }
}

# One rule per archive kind (local.kinds, the prefixes the node role may write; a test
# keeps the two lists equal). Written out rather than as a dynamic "rule": checkov drops
# the static rule below when a dynamic one sits beside it, and would no longer see the
# whole-bucket rule. Objects under 128 KB are not transitioned (S3's default minimum
# since 2024), so small batches stay in Standard until they expire.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "raw"
    status = "Enabled"

    filter {
      prefix = "${var.prefix}raw/"
    }

    transition {
      days          = var.lifecycle_rules["raw"].standard_ia_after_days
      storage_class = "STANDARD_IA"
    }

    transition {
      days          = var.lifecycle_rules["raw"].glacier_ir_after_days
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.lifecycle_rules["raw"].expire_after_days
    }
  }

  rule {
    id     = "enriched"
    status = "Enabled"

    filter {
      prefix = "${var.prefix}enriched/"
    }

    transition {
      days          = var.lifecycle_rules["enriched"].standard_ia_after_days
      storage_class = "STANDARD_IA"
    }

    transition {
      days          = var.lifecycle_rules["enriched"].glacier_ir_after_days
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.lifecycle_rules["enriched"].expire_after_days
    }
  }

  # Whole bucket: overwritten and deleted archive objects (noncurrent versions) go after
  # 30 days, then their delete markers; uploads a crashed worker left unfinished, after
  # a day.
  rule {
    id     = "noncurrent-and-incomplete"
    status = "Enabled"

    filter {}

    expiration {
      expired_object_delete_marker = true
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
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
    sid       = "DenyTlsBelow12"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  # S3 refuses a policy while the public access block is still being applied
  depends_on = [aws_s3_bucket_public_access_block.this]
}
