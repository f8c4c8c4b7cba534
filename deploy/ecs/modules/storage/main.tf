# The state Butakero keeps outside the stream: audio in one S3 bucket, the
# operation and song projections in two DynamoDB tables. The stream is the
# source of truth; both tables can be rebuilt from it (`butakero replay`).
#
# The tables are the ones platform/store/dynamostore creates with AWS_AUTO_CREATE
# (its Definitions): a string key "id", one GSI each with all attributes,
# on-demand capacity, TTL on "expires_at". deploy/ecs's tests hold these
# blocks to that code. Here they come from Terraform, so no task role may
# create or alter a table.

locals {
  operations_table = "${var.name}-operations"
  songs_table      = "${var.name}-songs"
}

resource "aws_s3_bucket" "blobs" {
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "blobs" {
  bucket                  = aws_s3_bucket.blobs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# SSE-S3: encrypted at rest with keys S3 manages, so the task roles need no
# KMS permission.
resource "aws_s3_bucket_server_side_encryption_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# staging/<operation_id>.<ext> holds a downloaded source until the encoder
# has turned it into audio/<song_id>.dca; the encoder deletes it as soon as
# the operation ends and the fetcher sweeps what a crash left (after
# STAGING_MAX_AGE). This rule is the last resort for anything both missed.
# It is counted in days, far above STAGE_TIMEOUT, so it never takes the
# source of an operation still waiting in the encoder's backlog in
# practice; a backlog days long would lose those sources.
resource "aws_s3_bucket_lifecycle_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  rule {
    id     = "staging"
    status = "Enabled"
    filter {
      prefix = "staging/"
    }
    expiration {
      days = var.staging_expiration_days
    }
  }

  # A Put cut short aborts its multipart upload; this catches an upload
  # whose process died before it could.
  rule {
    id     = "incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "blobs" {
  statement {
    sid     = "TLSOnly"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.blobs.arn, "${aws_s3_bucket.blobs.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  policy = data.aws_iam_policy_document.blobs.json
}

# DYNAMODB_TABLE_NAME_OPERATION: one item per operation.
resource "aws_dynamodb_table" "operations" {
  name                        = local.operations_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "song_id"
    type = "S"
  }
  attribute {
    name = "created_at"
    type = "S"
  }

  # A song's operations, newest first.
  global_secondary_index {
    name            = "by-song"
    hash_key        = "song_id"
    range_key       = "created_at"
    projection_type = "ALL"
  }

  # Finished operations expire OPERATION_TTL after their last event.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }
}

# DYNAMODB_TABLE_NAME_SONGS: one item per song, plus the resolver's cache
# entries (query#…, video#…), which expire.
resource "aws_dynamodb_table" "songs" {
  name                        = local.songs_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "catalog"
    type = "S"
  }
  attribute {
    name = "title_key"
    type = "S"
  }

  # The catalog in title order (GET /v1/songs).
  global_secondary_index {
    name            = "by-title"
    hash_key        = "catalog"
    range_key       = "title_key"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }
}
