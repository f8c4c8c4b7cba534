# The ECS cluster the five services run in, and the security group every
# task has: no ingress (the gateway adds its own for the load balancer),
# egress anywhere (NATS, the AWS APIs, YouTube and allowed media hosts).

resource "aws_ecs_cluster" "this" {
  name = var.name

  # Container Insights publishes RunningTaskCount per service, the
  # denominator of the stages' backlog-per-task scaling.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "Butakero tasks: egress only"
  vpc_id      = var.vpc_id

  egress {
    description      = "NATS, AWS APIs, media sources"
    from_port        = 0
    to_port          = 0
    protocol         = "-1"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }
}
