# The gateway behind an internet-facing Application Load Balancer. It
# reads the projections (gateway.Store: Operation, Song, Ping; Catalog:
# SearchSongs) and the DCA files (gateway.Blobs: Stat, OpenRange, Ping),
# and puts no object and no item: the stream is its only write.

locals {
  port = 8080

  # The load balancer's idle timeout. A WebSocket carries the gateway's
  # ping every 20 s (socket.go pingEvery), so it is never idle that long;
  # plain HTTP keep-alive connections are closed by the gateway after 2 min
  # idle (gateway.go idleTimeout), and the balancer must give up on an idle
  # connection before its target does, or it may send a request on one the
  # target is closing (a 502).
  idle_timeout = 90

  https = var.certificate_arn != ""
}

data "aws_iam_policy_document" "task" {
  # dynamostore.Store.Operation and Song (GetItem), Ping (DescribeTable of
  # both tables, for /readyz).
  statement {
    sid       = "ReadProjections"
    actions   = ["dynamodb:GetItem", "dynamodb:DescribeTable"]
    resources = [var.common.storage.operations_table_arn, var.common.storage.songs_table_arn]
  }
  # dynamostore.Store.SearchSongs: Query of the songs table's by-title index.
  statement {
    sid       = "SearchCatalog"
    actions   = ["dynamodb:Query"]
    resources = ["${var.common.storage.songs_table_arn}/index/by-title"]
  }
  # s3blob.Store.OpenRange (GetObject) and Stat (HeadObject: s3:GetObject).
  statement {
    sid       = "ReadAudio"
    actions   = ["s3:GetObject"]
    resources = ["${var.common.storage.bucket_arn}/*"]
  }
  # s3blob.Store.Ping (HeadBucket, ListObjectsV2 of one key) for /readyz;
  # also what makes a missing DCA a 404 rather than a 403.
  statement {
    sid       = "CheckBucket"
    actions   = ["s3:ListBucket"]
    resources = [var.common.storage.bucket_arn]
  }
}

resource "aws_security_group" "alb" {
  name        = "${var.common.cluster_name}-alb"
  description = "Butakero load balancer: HTTP(S) from anywhere"
  vpc_id      = var.vpc_id

  ingress {
    description      = "HTTPS"
    from_port        = 443
    to_port          = 443
    protocol         = "tcp"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }

  ingress {
    description      = "HTTP (redirected to HTTPS when there is a certificate)"
    from_port        = 80
    to_port          = 80
    protocol         = "tcp"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }

  egress {
    description = "to the gateway tasks"
    from_port   = local.port
    to_port     = local.port
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "gateway" {
  name        = "${var.common.cluster_name}-gateway"
  description = "Butakero gateway tasks: HTTP from the load balancer"
  vpc_id      = var.vpc_id

  ingress {
    description     = "from the load balancer"
    from_port       = local.port
    to_port         = local.port
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }
}

resource "aws_lb" "this" {
  name                       = var.common.cluster_name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = local.idle_timeout
  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "gateway" {
  name        = "${var.common.cluster_name}-gateway"
  port        = local.port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  # A stopping task finishes its requests within SHUTDOWN_GRACE (20 s).
  deregistration_delay = 30

  # /readyz: NATS and the stores reachable (503 otherwise), so a task that
  # lost them stops receiving requests.
  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

# With a certificate, port 80 only redirects; without one (a dev stage with
# no domain), it serves.
resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.gateway.arn

    dynamic "redirect" {
      for_each = local.https ? ["https"] : []
      content {
        protocol    = "HTTPS"
        port        = "443"
        status_code = "HTTP_301"
      }
    }
  }
}

module "service" {
  source = "../service"

  name   = "gateway"
  common = var.common
  size   = var.size

  cpu_target_percent = 60

  environment = merge(var.common.environment, var.common.storage.blob_environment, var.common.storage.table_environment, {
    HTTP_ADDR       = ":${local.port}"
    PUBLIC_URL      = var.public_url
    ALLOWED_ORIGINS = var.allowed_origins
  })
  secrets = merge(var.common.secrets, {
    API_KEYS = var.api_keys_secret_arn
  })
  secret_files = var.common.secret_files

  container_port   = local.port
  target_group_arn = aws_lb_target_group.gateway.arn

  task_policy_json         = data.aws_iam_policy_document.task.json
  extra_security_group_ids = [aws_security_group.gateway.id]
}
