# One component as an ECS service on Fargate: its task definition (the
# butakero image with the component's name as its command), log group,
# task role (the component's own policy), execution role (image, logs and
# exactly the secrets it is given), the service, and its scaling.
#
# A component with a durable consumer logs that consumer's backlog as an
# Embedded Metric Format line (METRICS_EMF, package platform/runtime/emf); with a
# backlog target, the service target-tracks backlog / running tasks.

locals {
  family     = "butakero-${var.common.stage}-${var.name}"
  secret_dir = "/run/butakero"

  # These are platform/runtime/emf's constants; deploy/ecs's tests check them.
  metric_namespace     = "Butakero"
  backlog_metric       = "ConsumerBacklog"
  dimension_deployment = "Deployment"
  dimension_consumer   = "Consumer"

  metrics_environment = var.consumer == "" ? {} : {
    METRICS_EMF        = "true"
    METRICS_DEPLOYMENT = var.common.stage
  }

  # A secret that the code reads from a file (a yt-dlp cookies file, a NATS
  # credentials file) is written by an init container into a volume only
  # this task mounts, and its variable names the file.
  files = [for file in sort(keys(var.secret_files)) : {
    file = file
    env  = var.secret_files[file].env
    arn  = var.secret_files[file].secret_arn
    var  = "SECRET_FILE_${upper(replace(replace(file, ".", "_"), "-", "_"))}"
  }]
  file_environment = { for f in local.files : f.env => "${local.secret_dir}/${f.file}" }

  environment = merge(var.environment, local.file_environment, local.metrics_environment)

  secret_arns = distinct(concat(values(var.secrets), [for f in local.files : f.arn]))

  log_configuration = {
    logDriver = "awslogs"
    options = {
      "awslogs-group"         = aws_cloudwatch_log_group.this.name
      "awslogs-region"        = var.common.region
      "awslogs-stream-prefix" = var.name
      # A slow CloudWatch must not block the process's writes to stderr.
      "mode"            = "non-blocking"
      "max-buffer-size" = "25m"
    }
  }

  init_container = {
    name       = "secret-files"
    image      = var.common.image
    essential  = false
    user       = "0"
    entryPoint = ["/bin/sh", "-c"]
    command = [join(" && ", concat(["umask 022"], [
      for f in local.files : format("printf '%%s' \"$%s\" >%s/%s", f.var, local.secret_dir, f.file)
    ]))]
    secrets          = [for f in local.files : { name = f.var, valueFrom = f.arn }]
    mountPoints      = [{ sourceVolume = "secret-files", containerPath = local.secret_dir, readOnly = false }]
    logConfiguration = local.log_configuration
  }

  main_container = {
    name        = var.name
    image       = var.common.image
    command     = [var.name]
    essential   = true
    stopTimeout = var.stop_timeout
    environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    secrets     = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]
    portMappings = var.container_port == 0 ? [] : [{
      containerPort = var.container_port
      protocol      = "tcp"
    }]
    mountPoints = length(local.files) == 0 ? [] : [{
      sourceVolume  = "secret-files"
      containerPath = local.secret_dir
      readOnly      = true
    }]
    dependsOn = length(local.files) == 0 ? [] : [{
      containerName = "secret-files"
      condition     = "SUCCESS"
    }]
    logConfiguration = local.log_configuration
  }

  containers = concat(length(local.files) == 0 ? [] : [local.init_container], [local.main_container])
}

data "aws_caller_identity" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/butakero/${var.common.stage}/${var.name}"
  retention_in_days = var.common.log_retention_days
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The role the component's code runs as: only what its adapters call (a
# component that calls no AWS service, the notifier, gets no policy).
resource "aws_iam_role" "task" {
  name               = "${local.family}-task"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "task" {
  count  = var.task_policy_json == "" ? 0 : 1
  name   = "adapters"
  role   = aws_iam_role.task.id
  policy = var.task_policy_json
}

# The role ECS starts the task with: pull the image, write the log, read
# this component's secrets and no other.
resource "aws_iam_role" "execution" {
  name               = "${local.family}-execution"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "secrets" {
  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.secret_arns
  }
}

resource "aws_iam_role_policy" "secrets" {
  count  = length(local.secret_arns) == 0 ? 0 : 1
  name   = "secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.secrets.json
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.size.cpu
  memory                   = var.size.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.common.cpu_architecture
  }

  volume {
    name = "secret-files"
  }

  container_definitions = jsonencode(local.containers)
}

resource "aws_ecs_service" "this" {
  name            = var.name
  cluster         = var.common.cluster_arn
  task_definition = aws_ecs_task_definition.this.arn
  desired_count   = var.size.min

  capacity_provider_strategy {
    capacity_provider = var.size.capacity_provider
    weight            = 1
  }

  network_configuration {
    subnets          = var.common.subnet_ids
    security_groups  = concat(var.common.security_group_ids, var.extra_security_group_ids)
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  dynamic "load_balancer" {
    for_each = var.target_group_arn == "" ? [] : [var.target_group_arn]
    content {
      target_group_arn = load_balancer.value
      container_name   = var.name
      container_port   = var.container_port
    }
  }
  health_check_grace_period_seconds = var.target_group_arn == "" ? null : 30

  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  # The scaling below owns the task count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.common.cluster_name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.size.min
  max_capacity       = var.size.max
}

# Backlog per task: the consumer's backlog (the largest reading of the
# minute: every task reports the same consumer) divided by the tasks
# running. A scaled-in service keeps min_count >= 1 tasks, since the
# tasks are what report the backlog.
resource "aws_appautoscaling_policy" "backlog" {
  count              = var.size.backlog_per_task > 0 ? 1 : 0
  name               = "${local.family}-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.size.backlog_per_task
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    customized_metric_specification {
      metrics {
        id          = "backlog"
        label       = "${var.consumer} consumer backlog"
        return_data = false
        metric_stat {
          metric {
            namespace   = local.metric_namespace
            metric_name = local.backlog_metric
            dimensions {
              name  = local.dimension_deployment
              value = var.common.stage
            }
            dimensions {
              name  = local.dimension_consumer
              value = var.consumer
            }
          }
          stat = "Maximum"
        }
      }

      metrics {
        id          = "tasks"
        label       = "running tasks"
        return_data = false
        metric_stat {
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = var.common.cluster_name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.this.name
            }
          }
          stat = "Average"
        }
      }

      metrics {
        id          = "backlog_per_task"
        label       = "backlog per running task"
        expression  = "backlog / tasks"
        return_data = true
      }
    }
  }
}

# The gateway, which has no consumer, follows its CPU.
resource "aws_appautoscaling_policy" "cpu" {
  count              = var.cpu_target_percent > 0 ? 1 : 0
  name               = "${local.family}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
