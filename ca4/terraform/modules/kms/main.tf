# One customer-managed key for everything CA4 encrypts at rest that accepts one:
# DocumentDB storage, the archive bucket, EBS root volumes, CloudWatch log groups.
# (The logs bucket uses SSE-S3: load balancer access logs accept nothing else.)

data "aws_partition" "current" {}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:A key policy, not an IAM policy: resource "*" means this key only, and kms:* for the account root is AWS's default key policy that lets IAM grant access.
  #checkov:skip=CKV_AWS_111:A key policy, not an IAM policy: resource "*" means this key only; writes are limited to the account root and CloudWatch Logs of this account.
  #checkov:skip=CKV_AWS_356:A key policy, not an IAM policy: its only resource is the key itself, which KMS spells "*".

  # The account administers the key and IAM policies grant its use, so the node role
  # and the Terraform user are authorised in IAM like anything else.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means this key

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${var.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the DocumentDB and WAF log groups with this key; it is a
  # service principal, so it needs its own statement, limited to this account's groups.
  statement {
    sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${var.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: DocumentDB, S3 archive, EBS volumes and log groups"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_days
  policy                  = data.aws_iam_policy_document.this.json

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
