terraform {
  # 1.6 is also the first OpenTofu release: the same code runs on `terraform` and `tofu`.
  required_version = ">= 1.6.0, < 2.0.0"

  # Minor-compatible ranges here; the exact versions and their checksums are pinned by
  # .terraform.lock.hcl, which the first `make plan` writes and which is committed.
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }
}
