variable "name" {
  description = "Name prefix of the bucket and its tags."
  type        = string
}

variable "account_id" {
  description = "AWS account of the stack: part of the bucket name and the only source log deliveries are accepted from."
  type        = string
}

variable "region" {
  description = "Region of the stack: part of the bucket name."
  type        = string
}

variable "retention_days" {
  description = "Days log objects are kept."
  type        = number
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with every log in it."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
