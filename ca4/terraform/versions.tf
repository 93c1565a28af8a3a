terraform {
  # 1.6 is also the first OpenTofu release: the same code runs on `terraform` and `tofu`.
  required_version = ">= 1.6.0, < 2.0.0"

  # Minor-compatible ranges here. The exact versions and their checksums go into
  # .terraform.lock.hcl, which `terraform init` (run by the first `make ca4-plan`) writes:
  # the repository ships none, as no provider registry was reachable where this kit is
  # built and tested. Commit the file it writes, so every later plan uses the same builds.
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
