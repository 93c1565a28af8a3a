variable "name" {
  description = "Name prefix of every network resource."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC; public subnets take its /24s 0 and 1, private subnets its /24s 10 and 11."
  type        = string
}

variable "azs" {
  description = "Availability zones, one public and one private subnet in each."
  type        = list(string)
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per zone instead of a single shared one."
  type        = bool
  default     = false
}

variable "flow_log_bucket_arn" {
  description = "ARN of the S3 bucket that receives the VPC flow logs."
  type        = string
}

variable "flow_log_prefix" {
  description = "Prefix (ending in /) of the flow logs inside that bucket."
  type        = string
}

variable "flow_log_traffic_type" {
  description = "ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
