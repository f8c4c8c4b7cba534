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
    resources = [var.common.storage.operations_table_arn, var.common.storage.songs_table_arn]
  }
}

module "service" {
  source = "../service"

  name   = "recorder"
  common = var.common
  size   = var.size

  consumer = "recorder"

  environment  = var.common.environment
  secrets      = var.common.secrets
  secret_files = var.common.secret_files

  task_policy_json = data.aws_iam_policy_document.task.json
}
