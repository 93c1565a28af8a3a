variable "name" {
  description = "Name prefix of the key's alias and tags."
  type        = string
}

variable "account_id" {
  description = "AWS account that owns the key (its root user administers it through IAM)."
  type        = string
}

variable "region" {
  description = "Region of the key; CloudWatch Logs in this region may use it for log groups of this account."
  type        = string
}

variable "deletion_window_days" {
  description = "Days between scheduling the key's deletion and its deletion (a chance to cancel a destroy)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags of the key."
  type        = map(string)
  default     = {}
}
