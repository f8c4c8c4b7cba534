output "arn" {
  value = aws_ecs_cluster.this.arn
}

output "name" {
  value = aws_ecs_cluster.this.name
}

output "tasks_security_group_id" {
  value = aws_security_group.tasks.id
}
