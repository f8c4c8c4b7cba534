# The recorder: every event into the operation and song projections
# (recorder.Store: Operation, PutOperationIf, Song, PutSongIf), one
# operation's events in stream order, different operations' at once in
# RECORDER_PARTITIONS lanes that every task pulls from: more tasks share
# the lanes.

data "aws_iam_policy_document" "task" {
  # dynamostore.Store.Operation/Song (GetItem), PutOperationIf/PutSongIf
  # (a conditional PutItem for a new record, a conditional UpdateItem of
  # the attributes that changed for a stored one).
  statement {
    sid       = "WriteProjections"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
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

  environment  = var.common.environment
  secrets      = var.common.secrets
  secret_files = var.common.secret_files

  task_policy_json   = data.aws_iam_policy_document.task.json
  subnet_ids         = var.common.subnet_ids
  security_group_ids = var.common.security_group_ids
  log_retention_days = var.common.log_retention_days
}
