output "cluster_id" {
  description = "Identifier of the cluster."
  value       = aws_docdb_cluster.this.id
}

output "endpoint" {
  description = "Writer endpoint of the cluster."
  value       = aws_docdb_cluster.this.endpoint
}

output "reader_endpoint" {
  description = "Reader endpoint of the cluster."
  value       = aws_docdb_cluster.this.reader_endpoint
}

output "port" {
  description = "Port of the cluster."
  value       = aws_docdb_cluster.this.port
}

output "final_snapshot_identifier" {
  description = "Name the final snapshot will get when the cluster is destroyed."
  value       = aws_docdb_cluster.this.final_snapshot_identifier
}
