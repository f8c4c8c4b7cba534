# CloudWatch alarms for the conditions of deploy/observability's
# Prometheus rules, on what reaches CloudWatch from the tasks:
#
#   - the EMF metrics the stage services write (platform/runtime/emf):
#     ConsumerBacklog by Deployment and Consumer, YtDlpAgeDays by
#     Deployment and Service;
#   - metrics that CloudWatch Logs extracts from the components' JSON log
#     lines (metric filters below, namespace Butakero/<stage>): operations
#     requested (the gateway's access lines), operations failed per stage
#     and YouTube's refusals (the stage runtime's failure lines), songs
#     finished (the encoder's and the fetcher's lines for a stored DCA),
#     webhook deliveries given up (the notifier's error lines).
#     deploy/ecs's tests check that every message a filter matches is one
#     the code logs.
#
# The log lines of successes are at info: the alarms that count them exist
# only when log_level is debug or info. The ratios are per operation
# requested (the logs have no line per attempt), where the Prometheus
# rules' are per attempt.

variable "alarm_actions" {
  description = "ARNs (an SNS topic) notified when an alarm fires and when it clears. Empty: the alarms are only visible in the console."
  type        = list(string)
  default     = []
}

locals {
  log_metrics_namespace = "Butakero/${var.stage}"
  log_group             = { for c in ["gateway", "resolver", "fetcher", "encoder", "recorder", "notifier"] : c => "/butakero/${var.stage}/${c}" }
  info_logged           = contains(["debug", "info"], var.log_level)

  # The stage runtime's stage names and their services.
  stages         = ["resolve", "fetch", "encode"]
  stage_services = { resolve = "resolver", fetch = "fetcher", encode = "encoder" }

  # The log messages the filters match (deploy/ecs's tests find each in
  # the code that logs it).
  msg_http_request     = "http request"
  msg_operation_failed = "stage: operation failed"
  msg_attempt_retried  = "stage: attempt failed, will retry"
  msg_dca_stored       = "encoder: stored DCA"
  msg_dca_was_stored   = "encoder: the song's DCA is stored already; not encoding again"
  msg_song_was_stored  = "fetcher: song already stored; nothing fetched"
  # The notifier's lines for a delivery given up (butakero_webhook_deliveries_total's
  # expired, refused and rejected outcomes), logged at error.
  msg_webhook_expired  = "notifier: giving the delivery up: WEBHOOK_MAX_AGE passed"
  msg_webhook_refused  = "notifier: delivery refused by WEBHOOK_ALLOWED_HOSTS; not retried"
  msg_webhook_rejected = "notifier: the receiver rejected the delivery; not retried"
}

# --- Metrics from the logs

resource "aws_cloudwatch_log_metric_filter" "operations_requested" {
  name           = "butakero-${var.stage}-operations-requested"
  log_group_name = local.log_group.gateway
  pattern        = "{ $.msg = \"${local.msg_http_request}\" && $.method = \"POST\" && ($.path = \"/api/audio/start\" || $.path = \"/v1/operations\") && $.status >= 200 && $.status <= 299 }"
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = "OperationsRequested"
    value         = "1"
    default_value = "0"
  }
  depends_on = [module.gateway]
}

resource "aws_cloudwatch_log_metric_filter" "operations_failed" {
  count          = length(local.stages)
  name           = "butakero-${var.stage}-operations-failed-${local.stages[count.index]}"
  log_group_name = local.log_group[local.stage_services[local.stages[count.index]]]
  pattern        = "{ $.msg = \"${local.msg_operation_failed}\" && $.stage = \"${local.stages[count.index]}\" }"
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = "OperationsFailed-${local.stages[count.index]}"
    value         = "1"
    default_value = "0"
  }
  depends_on = [module.resolver, module.fetcher, module.encoder]
}

resource "aws_cloudwatch_log_metric_filter" "youtube_refusals" {
  name           = "butakero-${var.stage}-youtube-refusals"
  log_group_name = local.log_group.fetcher
  pattern        = "{ ($.msg = \"${local.msg_attempt_retried}\" || $.msg = \"${local.msg_operation_failed}\") && $.stage = \"fetch\" && ($.code = \"sign_in_required\" || $.code = \"rate_limited\") }"
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = "YouTubeRefusals"
    value         = "1"
    default_value = "0"
  }
  depends_on = [module.fetcher]
}

resource "aws_cloudwatch_log_metric_filter" "songs_finished_encoded" {
  name           = "butakero-${var.stage}-songs-finished-encoded"
  log_group_name = local.log_group.encoder
  pattern        = "{ $.msg = \"${local.msg_dca_stored}\" || $.msg = \"${local.msg_dca_was_stored}\" }"
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = "SongsFinished"
    value         = "1"
    default_value = "0"
  }
  depends_on = [module.encoder]
}

resource "aws_cloudwatch_log_metric_filter" "songs_finished_cached" {
  name           = "butakero-${var.stage}-songs-finished-cached"
  log_group_name = local.log_group.fetcher
  pattern        = "{ $.msg = \"${local.msg_song_was_stored}\" }"
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = "SongsFinished"
    value         = "1"
    default_value = "0"
  }
  depends_on = [module.fetcher]
}

resource "aws_cloudwatch_log_metric_filter" "webhooks_given_up" {
  count          = local.notifier ? 1 : 0
  name           = "butakero-${var.stage}-webhooks-given-up"
  log_group_name = local.log_group.notifier
  pattern        = "{ $.msg = \"${local.msg_webhook_expired}\" || $.msg = \"${local.msg_webhook_refused}\" || $.msg = \"${local.msg_webhook_rejected}\" }"
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = "WebhooksGivenUp"
    value         = "1"
    default_value = "0"
  }
  depends_on = [module.notifier]
}

# --- Alarms

# ButakeroConsumerBacklogGrowing: above 20 and not shrinking for 10 minutes.
resource "aws_cloudwatch_metric_alarm" "backlog_growing" {
  count               = length(local.stages)
  alarm_name          = "butakero-${var.stage}-${local.stage_services[local.stages[count.index]]}-backlog-growing"
  alarm_description   = "The ${local.stage_services[local.stages[count.index]]} consumer's backlog is above 20 messages and has not shrunk for 10 minutes: the ${local.stages[count.index]} stage does not keep up."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  treat_missing_data  = "missing"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "growing"
    expression  = "IF(backlog > 20 AND DIFF(backlog) >= 0, 1, 0)"
    label       = "backlog above 20 and growing"
    return_data = true
  }
  metric_query {
    id = "backlog"
    metric {
      namespace   = "Butakero"
      metric_name = "ConsumerBacklog"
      dimensions  = { Deployment = var.stage, Consumer = local.stage_services[local.stages[count.index]] }
      period      = 60
      stat        = "Maximum"
    }
  }
}

# ButakeroProjectionLag: the recorder's backlog above 100 for 5 minutes.
resource "aws_cloudwatch_metric_alarm" "projection_lag" {
  alarm_name          = "butakero-${var.stage}-projection-lag"
  alarm_description   = "The recorder has over 100 events not yet applied: operation states and the catalog are stale. Check DynamoDB and the recorder's log."
  namespace           = "Butakero"
  metric_name         = "ConsumerBacklog"
  dimensions          = { Deployment = var.stage, Consumer = "recorder" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 100
  treat_missing_data  = "missing"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

# ButakeroYtDlpStale: the fetcher's yt-dlp release over 90 days old.
resource "aws_cloudwatch_metric_alarm" "ytdlp_stale" {
  alarm_name          = "butakero-${var.stage}-ytdlp-stale"
  alarm_description   = "The fetcher's yt-dlp is over 90 days old: YouTube downloads will likely fail. Rebuild the image with a current yt-dlp."
  namespace           = "Butakero"
  metric_name         = "YtDlpAgeDays"
  dimensions          = { Deployment = var.stage, Service = "fetcher" }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 90
  treat_missing_data  = "missing"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

# ButakeroStageFailureRatioHigh: over 25% of the operations requested in
# 15 minutes failed at this stage, with at least 5 requested.
resource "aws_cloudwatch_metric_alarm" "stage_failure_ratio" {
  count               = local.info_logged ? length(local.stages) : 0
  alarm_name          = "butakero-${var.stage}-${local.stages[count.index]}-failure-ratio"
  alarm_description   = "Over 25% of the operations requested in 15 minutes failed at the ${local.stages[count.index]} stage; the ${local.stage_services[local.stages[count.index]]}'s log says why (code)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0.25
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "ratio"
    expression  = "IF(FILL(requested, 0) >= 5, FILL(failed, 0) / requested, 0)"
    label       = "operations failed at ${local.stages[count.index]} / requested"
    return_data = true
  }
  metric_query {
    id = "failed"
    metric {
      namespace   = local.log_metrics_namespace
      metric_name = "OperationsFailed-${local.stages[count.index]}"
      period      = 900
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requested"
    metric {
      namespace   = local.log_metrics_namespace
      metric_name = "OperationsRequested"
      period      = 900
      stat        = "Sum"
    }
  }
}

# ButakeroYouTubeRefusingDownloads: fetch attempts refused with
# sign_in_required or rate_limited above 10% of the operations requested,
# for two 5-minute periods.
resource "aws_cloudwatch_metric_alarm" "youtube_refusing" {
  count               = local.info_logged ? 1 : 0
  alarm_name          = "butakero-${var.stage}-youtube-refusing"
  alarm_description   = "YouTube refuses downloads (sign_in_required, rate_limited) for over 10% of the operations requested: update yt-dlp, set YTDLP_COOKIES_FILE or YTDLP_PROXY."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0.1
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "ratio"
    expression  = "IF(FILL(requested, 0) > 0, FILL(refused, 0) / requested, 0)"
    label       = "YouTube refusals / operations requested"
    return_data = true
  }
  metric_query {
    id = "refused"
    metric {
      namespace   = local.log_metrics_namespace
      metric_name = "YouTubeRefusals"
      period      = 300
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requested"
    metric {
      namespace   = local.log_metrics_namespace
      metric_name = "OperationsRequested"
      period      = 300
      stat        = "Sum"
    }
  }
}

# ButakeroNoSongsFinishing: operations requested in 15 minutes and no song
# finished.
resource "aws_cloudwatch_metric_alarm" "no_songs_finishing" {
  count               = local.info_logged ? 1 : 0
  alarm_name          = "butakero-${var.stage}-no-songs-finishing"
  alarm_description   = "Operations were requested in the last 15 minutes and no song finished: the pipeline is stuck or every song fails."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "stuck"
    expression  = "IF(FILL(requested, 0) > 0 AND FILL(finished, 0) == 0, 1, 0)"
    label       = "requested and none finished"
    return_data = true
  }
  metric_query {
    id = "requested"
    metric {
      namespace   = local.log_metrics_namespace
      metric_name = "OperationsRequested"
      period      = 900
      stat        = "Sum"
    }
  }
  metric_query {
    id = "finished"
    metric {
      namespace   = local.log_metrics_namespace
      metric_name = "SongsFinished"
      period      = 900
      stat        = "Sum"
    }
  }
}

# Webhook deliveries given up: past WEBHOOK_MAX_AGE (the receiver failing
# for that long), refused by WEBHOOK_ALLOWED_HOSTS (a redirect or an
# address off the list) or rejected by the receiver (a 4xx). Each is an
# outcome the receiver never gets; the notifier's log says which and why.
resource "aws_cloudwatch_metric_alarm" "webhooks_given_up" {
  count               = local.notifier ? 1 : 0
  alarm_name          = "butakero-${var.stage}-webhooks-given-up"
  alarm_description   = "The notifier gave up a webhook delivery (expired after WEBHOOK_MAX_AGE, refused by WEBHOOK_ALLOWED_HOSTS, or rejected by the receiver with a 4xx): a receiver missed an outcome. The notifier's log says which."
  namespace           = local.log_metrics_namespace
  metric_name         = "WebhooksGivenUp"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}
