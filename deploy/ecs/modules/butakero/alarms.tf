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

locals {
  # Each filter by the name of its metric filter (butakero-<stage>-<key>):
  # the component whose log group it reads, the metric it extracts (a count
  # of matching lines) and its pattern.
  log_metric_filters = merge(
    {
      operations-requested = {
        component = "gateway"
        metric    = "OperationsRequested"
        pattern   = "{ $.msg = \"${local.msg_http_request}\" && $.method = \"POST\" && ($.path = \"/api/audio/start\" || $.path = \"/v1/operations\") && $.status >= 200 && $.status <= 299 }"
      }
      youtube-refusals = {
        component = "fetcher"
        metric    = "YouTubeRefusals"
        pattern   = "{ ($.msg = \"${local.msg_attempt_retried}\" || $.msg = \"${local.msg_operation_failed}\") && $.stage = \"fetch\" && ($.code = \"sign_in_required\" || $.code = \"rate_limited\") }"
      }
      songs-finished-encoded = {
        component = "encoder"
        metric    = "SongsFinished"
        pattern   = "{ $.msg = \"${local.msg_dca_stored}\" || $.msg = \"${local.msg_dca_was_stored}\" }"
      }
      songs-finished-cached = {
        component = "fetcher"
        metric    = "SongsFinished"
        pattern   = "{ $.msg = \"${local.msg_song_was_stored}\" }"
      }
    },
    { for s in local.stages : "operations-failed-${s}" => {
      component = local.stage_services[s]
      metric    = "OperationsFailed-${s}"
      pattern   = "{ $.msg = \"${local.msg_operation_failed}\" && $.stage = \"${s}\" }"
    } },
    local.notifier ? {
      webhooks-given-up = {
        component = "notifier"
        metric    = "WebhooksGivenUp"
        pattern   = "{ $.msg = \"${local.msg_webhook_expired}\" || $.msg = \"${local.msg_webhook_refused}\" || $.msg = \"${local.msg_webhook_rejected}\" }"
      }
    } : {},
  )
}

resource "aws_cloudwatch_log_metric_filter" "from_logs" {
  for_each       = local.log_metric_filters
  name           = "butakero-${var.stage}-${each.key}"
  log_group_name = local.log_group[each.value.component]
  pattern        = each.value.pattern
  metric_transformation {
    namespace     = local.log_metrics_namespace
    name          = each.value.metric
    value         = "1"
    default_value = "0"
  }
  # The log groups are the components' modules'.
  depends_on = [module.gateway, module.resolver, module.fetcher, module.encoder, module.notifier]
}

# --- Alarms

locals {
  # Alarms on one metric's statistic against a threshold, by alarm name
  # (butakero-<stage>-<key>).
  #
  # ButakeroProjectionLag: the recorder's backlog above 100 for 5 minutes.
  # ButakeroYtDlpStale: the fetcher's yt-dlp release over 90 days old.
  # Webhook deliveries given up: past WEBHOOK_MAX_AGE (the receiver failing
  # for that long), refused by WEBHOOK_ALLOWED_HOSTS (a redirect or an
  # address off the list) or rejected by the receiver (a 4xx). Each is an
  # outcome the receiver never gets; the notifier's log says which and why.
  metric_alarms = merge(
    {
      projection-lag = {
        description         = "The recorder has over 100 events not yet applied: operation states and the catalog are stale. Check DynamoDB and the recorder's log."
        namespace           = "Butakero"
        metric              = "ConsumerBacklog"
        dimensions          = { Deployment = var.stage, Consumer = "recorder" }
        statistic           = "Maximum"
        period              = 60
        evaluation_periods  = 5
        datapoints_to_alarm = 5
        threshold           = 100
        treat_missing_data  = "missing"
      }
      ytdlp-stale = {
        description         = "The fetcher's yt-dlp is over 90 days old: YouTube downloads will likely fail. Rebuild the image with a current yt-dlp."
        namespace           = "Butakero"
        metric              = "YtDlpAgeDays"
        dimensions          = { Deployment = var.stage, Service = "fetcher" }
        statistic           = "Maximum"
        period              = 3600
        evaluation_periods  = 1
        datapoints_to_alarm = null
        threshold           = 90
        treat_missing_data  = "missing"
      }
    },
    local.notifier ? {
      webhooks-given-up = {
        description         = "The notifier gave up a webhook delivery (expired after WEBHOOK_MAX_AGE, refused by WEBHOOK_ALLOWED_HOSTS, or rejected by the receiver with a 4xx): a receiver missed an outcome. The notifier's log says which."
        namespace           = local.log_metrics_namespace
        metric              = "WebhooksGivenUp"
        dimensions          = null
        statistic           = "Sum"
        period              = 300
        evaluation_periods  = 1
        datapoints_to_alarm = null
        threshold           = 0
        treat_missing_data  = "notBreaching"
      }
    } : {},
  )

  # Alarms on an expression over metrics (the first query, returned), by
  # alarm name (butakero-<stage>-<key>). The log metrics (no dimensions)
  # are Sums in Butakero/<stage>.
  #
  # ButakeroConsumerBacklogGrowing: above 20 and not shrinking for 10 minutes.
  # ButakeroStageFailureRatioHigh: over 25% of the operations requested in
  # 15 minutes failed at this stage, with at least 5 requested.
  # ButakeroYouTubeRefusingDownloads: fetch attempts refused with
  # sign_in_required or rate_limited above 10% of the operations requested,
  # for two 5-minute periods.
  # ButakeroNoSongsFinishing: operations requested in 15 minutes and no song
  # finished.
  expression_alarms = merge(
    { for s in local.stages : "${local.stage_services[s]}-backlog-growing" => {
      description         = "The ${local.stage_services[s]} consumer's backlog is above 20 messages and has not shrunk for 10 minutes: the ${s} stage does not keep up."
      comparison_operator = "GreaterThanOrEqualToThreshold"
      threshold           = 1
      evaluation_periods  = 10
      datapoints_to_alarm = 10
      treat_missing_data  = "missing"
      id                  = "growing"
      expression          = "IF(backlog > 20 AND DIFF(backlog) >= 0, 1, 0)"
      label               = "backlog above 20 and growing"
      metrics = [{
        id         = "backlog"
        namespace  = "Butakero"
        name       = "ConsumerBacklog"
        dimensions = { Deployment = var.stage, Consumer = local.stage_services[s] }
        period     = 60
        stat       = "Maximum"
      }]
    } },
    !local.info_logged ? {} : merge(
      { for s in local.stages : "${s}-failure-ratio" => {
        description         = "Over 25% of the operations requested in 15 minutes failed at the ${s} stage; the ${local.stage_services[s]}'s log says why (code)."
        comparison_operator = "GreaterThanThreshold"
        threshold           = 0.25
        evaluation_periods  = 1
        datapoints_to_alarm = null
        treat_missing_data  = "notBreaching"
        id                  = "ratio"
        expression          = "IF(FILL(requested, 0) >= 5, FILL(failed, 0) / requested, 0)"
        label               = "operations failed at ${s} / requested"
        metrics = [
          { id = "failed", name = "OperationsFailed-${s}", period = 900 },
          { id = "requested", name = "OperationsRequested", period = 900 },
        ]
      } },
      {
        youtube-refusing = {
          description         = "YouTube refuses downloads (sign_in_required, rate_limited) for over 10% of the operations requested: update yt-dlp, set YTDLP_COOKIES_FILE or YTDLP_PROXY."
          comparison_operator = "GreaterThanThreshold"
          threshold           = 0.1
          evaluation_periods  = 2
          datapoints_to_alarm = 2
          treat_missing_data  = "notBreaching"
          id                  = "ratio"
          expression          = "IF(FILL(requested, 0) > 0, FILL(refused, 0) / requested, 0)"
          label               = "YouTube refusals / operations requested"
          metrics = [
            { id = "refused", name = "YouTubeRefusals", period = 300 },
            { id = "requested", name = "OperationsRequested", period = 300 },
          ]
        }
        no-songs-finishing = {
          description         = "Operations were requested in the last 15 minutes and no song finished: the pipeline is stuck or every song fails."
          comparison_operator = "GreaterThanOrEqualToThreshold"
          threshold           = 1
          evaluation_periods  = 1
          datapoints_to_alarm = null
          treat_missing_data  = "notBreaching"
          id                  = "stuck"
          expression          = "IF(FILL(requested, 0) > 0 AND FILL(finished, 0) == 0, 1, 0)"
          label               = "requested and none finished"
          metrics = [
            { id = "requested", name = "OperationsRequested", period = 900 },
            { id = "finished", name = "SongsFinished", period = 900 },
          ]
        }
      },
    ),
  )
}

resource "aws_cloudwatch_metric_alarm" "metric" {
  for_each            = local.metric_alarms
  alarm_name          = "butakero-${var.stage}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = each.value.treat_missing_data
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "expression" {
  for_each            = local.expression_alarms
  alarm_name          = "butakero-${var.stage}-${each.key}"
  alarm_description   = each.value.description
  comparison_operator = each.value.comparison_operator
  threshold           = each.value.threshold
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  treat_missing_data  = each.value.treat_missing_data
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = each.value.id
    expression  = each.value.expression
    label       = each.value.label
    return_data = true
  }
  dynamic "metric_query" {
    for_each = each.value.metrics
    content {
      id = metric_query.value.id
      metric {
        namespace   = lookup(metric_query.value, "namespace", local.log_metrics_namespace)
        metric_name = metric_query.value.name
        dimensions  = lookup(metric_query.value, "dimensions", {})
        period      = metric_query.value.period
        stat        = lookup(metric_query.value, "stat", "Sum")
      }
    }
  }
}
