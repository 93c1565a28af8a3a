# K3s edge nodes in the private subnets. Node 0 is the K3s server, the others join it as
# agents; K3s itself is installed over SSH by `make ca4-bootstrap-k3s`, not by user data,
# so a failed install is visible and can be re-run.

################################################################################
# Instance role: write the archive's raw/ and enriched/ prefixes, nothing else
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# IAM names are global to the account while the stack is regional: the region in the
# name lets the same name_prefix run in two regions, as the bucket names already do.
locals {
  iam_name = "${var.name}-edge-node-${var.region}"
}

resource "aws_iam_role" "this" {
  name               = local.iam_name
  description        = "CA4 edge nodes: the Metadata Worker's archive writes"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = merge(var.tags, { Name = "${var.name}-edge-node" })
}

data "aws_iam_policy_document" "archive" {
  # Put writes an archive object; Delete removes the superseded object of an earlier
  # attempt at the same offset range (see metadata_worker/sinks/s3.py). Both only under
  # raw/ and enriched/.
  statement {
    sid       = "WriteArchivePrefixes"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.archive_key_prefixes : "${var.archive_bucket_arn}/${p}*"]
  }

  # The worker lists an offset range's prefix before replacing an object, and its
  # readiness probe is HeadBucket, which needs ListBucket without a prefix: listing
  # reveals key names of this one bucket, never content.
  statement {
    sid       = "ListArchive"
    actions   = ["s3:ListBucket"]
    resources = [var.archive_bucket_arn]
  }

  # SSE-KMS: S3 asks KMS for a data key on every put, on the caller's behalf.
  statement {
    sid       = "EncryptArchiveObjects"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "archive" {
  name   = "${var.name}-archive-write"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.archive.json
}

resource "aws_iam_instance_profile" "this" {
  name = local.iam_name
  role = aws_iam_role.this.name

  tags = merge(var.tags, { Name = "${var.name}-edge-node" })
}

################################################################################
# Nodes
################################################################################

resource "aws_instance" "this" {
  count = var.node_count

  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_ids[count.index % length(var.subnet_ids)]
  vpc_security_group_ids = [var.security_group_id]
  key_name               = var.ssh_key_name
  iam_instance_profile   = aws_iam_instance_profile.this.name
  monitoring             = true
  ebs_optimized          = true

  # Flannel's VXLAN carries pod traffic between nodes with pod addresses inside; the
  # outer packets are node-to-node, so the source/destination check can stay on.

  # Hop limit 2 (the default of metadata_hop_limit) is deliberate: a pod's request to
  # 169.254.169.254 crosses one more hop (the pod network), and the Metadata Worker gets
  # its S3 credentials exactly that way. The role can only write raw/ and enriched/ of
  # one bucket, and the cluster's NetworkPolicies must let no pod but the worker reach
  # 169.254.169.254/32. (checkov's hop-limit check, CKV_AWS_341, covers launch templates.)
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = var.metadata_hop_limit
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true

    tags = merge(var.tags, { Name = "${var.name}-edge-${count.index}-root" })
  }

  tags = merge(var.tags, {
    Name = "${var.name}-edge-${count.index}"
    Role = count.index == 0 ? "k3s-server" : "k3s-agent"
  })

  lifecycle {
    # a newer AMI in the SSM parameter must not replace a running node
    ignore_changes = [ami]
  }
}
