# The bastion: the one SSH entry into the VPC. It runs nothing but sshd, holds no
# credentials and has no instance role; every tunnel (K3s API, Kafka, Grafana) passes
# through it.

resource "aws_instance" "this" {
  #checkov:skip=CKV2_AWS_41:The bastion calls no AWS API; an instance role would only give a stolen session credentials to use.
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [var.security_group_id]
  key_name               = var.ssh_key_name
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true

    tags = merge(var.tags, { Name = "${var.name}-bastion-root" })
  }

  tags = merge(var.tags, { Name = "${var.name}-bastion", Role = "bastion" })

  lifecycle {
    # a newer AMI in the SSM parameter must not replace a running bastion
    ignore_changes = [ami]
  }
}

# The internet gateway the Elastic IP needs: associating an EIP with an instance in a VPC
# without an attached gateway fails (the provider's aws_eip doc: "EIP may require IGW to
# exist prior to association. Use depends_on"). Nothing else in this module refers to the
# gateway, so the dependency is carried by this value, which is known only once it exists.
resource "terraform_data" "internet_gateway" {
  input = var.internet_gateway_id
}

# A fixed public address: my SSH config and known_hosts survive a stop/start, and the
# subnet need not hand out public addresses at launch.
resource "aws_eip" "this" {
  domain   = "vpc"
  instance = aws_instance.this.id

  depends_on = [terraform_data.internet_gateway]

  tags = merge(var.tags, { Name = "${var.name}-bastion" })
}
