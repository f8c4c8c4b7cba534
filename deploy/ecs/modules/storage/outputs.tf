output "bucket_name" {
  value = aws_s3_bucket.blobs.bucket
}

output "bucket_arn" {
  value = aws_s3_bucket.blobs.arn
}

output "operations_table_name" {
  value = aws_dynamodb_table.operations.name
}

output "operations_table_arn" {
  value = aws_dynamodb_table.operations.arn
}

output "songs_table_name" {
  value = aws_dynamodb_table.songs.name
}

output "songs_table_arn" {
  value = aws_dynamodb_table.songs.arn
}
