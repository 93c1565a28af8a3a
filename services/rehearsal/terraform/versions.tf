# The rehearsal's stand-in for ca4/terraform: the same outputs, filled from the rehearsal's
# hosts (terraform.tfvars, written by `python -m rehearsal nodes`), and no provider at all, so
# `terraform init`, `plan` and `apply` run offline. The same Makefile and preflight.sh as
# ca4/terraform drive it (symbolic links next to this file, made by the rehearsal).
terraform {
  required_version = ">= 1.6.0, < 2.0.0"
}
