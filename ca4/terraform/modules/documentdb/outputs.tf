output "endpoint" {
  description = "Writer endpoint of the cluster."
  value       = aws_docdb_cluster.this.endpoint
}

output "port" {
  description = "Port of the cluster."
  value       = aws_docdb_cluster.this.port
}
