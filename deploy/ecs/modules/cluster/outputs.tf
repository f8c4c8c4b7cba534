output "arn" {
  value = aws_ecs_cluster.this.arn
  # A service on FARGATE_SPOT needs the capacity providers associated
  # before it is created.
  depends_on = [aws_ecs_cluster_capacity_providers.this]
}

output "name" {
  value = aws_ecs_cluster.this.name
}

output "tasks_security_group_id" {
  value = aws_security_group.tasks.id
}
