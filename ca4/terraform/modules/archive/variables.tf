variable "name" {
  description = "Name prefix of the bucket."
  type        = string
}

variable "account_id" {
  description = "AWS account of the stack: part of the globally unique bucket name."
  type        = string
}

variable "region" {
  description = "Region of the stack: part of the bucket name."
  type        = string
}

variable "prefix" {
  description = "Key prefix (empty or ending in /) under which raw/ and enriched/ live: the worker's S3_PREFIX."
  type        = string
  default     = ""
}

variable "lifecycle_rules" {
  description = "Per archive kind (raw, enriched): days until Standard-IA, until Glacier Instant Retrieval, until expiry."
  type = map(object({
    standard_ia_after_days = number
    glacier_ir_after_days  = number
    expire_after_days      = number
  }))
}

variable "kms_key_arn" {
  description = "KMS key of the bucket's default encryption."
  type        = string
}

variable "access_log_bucket" {
  description = "Bucket that receives this bucket's server access logs."
  type        = string
}

variable "access_log_prefix" {
  description = "Prefix (ending in /) of the access logs in that bucket."
  type        = string
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with every archived object and version in it."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
