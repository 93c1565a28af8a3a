locals {
  database_name = "ca4"
}
