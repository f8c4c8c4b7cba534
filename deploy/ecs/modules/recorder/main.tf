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
    resources = [var.common.storage.operations_table_arn, var.common.storage.songs_table_arn]
  }
}

module "service" {
  source = "../service"

  name   = "recorder"
  common = var.common
  size   = var.size

  consumer = "recorder"

  environment  = merge(var.common.environment, var.common.storage.table_environment)
  secrets      = var.common.secrets
  secret_files = var.common.secret_files

  task_policy_json = data.aws_iam_policy_document.task.json
}
