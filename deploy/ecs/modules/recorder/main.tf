# The recorder: every event, in stream order, into the operation and song
# projections (recorder.Store: Operation, PutOperation, Song, PutSong).
# Its consumer has MaxAckPending 1, so more tasks add failover, never
# throughput: it does not scale.

data "aws_iam_policy_document" "task" {
  # dynamostore.Store.Operation/Song (GetItem), PutOperation/PutSong
  # (a conditional PutItem).
  statement {
    sid       = "WriteProjections"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [var.storage.operations_table_arn, var.storage.songs_table_arn]
  }
}

module "service" {
  source = "../service"

  stage            = var.common.stage
  name             = "recorder"
  image            = var.common.image
  region           = var.common.region
  cluster_arn      = var.common.cluster_arn
  cluster_name     = var.common.cluster_name
  cpu_architecture = var.common.cpu_architecture

  cpu               = var.size.cpu
  memory            = var.size.memory
  min_count         = var.size.min
  max_count         = var.size.max
  capacity_provider = var.size.capacity_provider
  consumer          = "recorder"

  environment  = merge(var.common.environment, var.storage.table_environment)
  secrets      = var.common.secrets
  secret_files = var.common.secret_files

  task_policy_json   = data.aws_iam_policy_document.task.json
  subnet_ids         = var.common.subnet_ids
  security_group_ids = var.common.security_group_ids
  log_retention_days = var.common.log_retention_days
}
