# Where alarms.tf's filters and alarms were before they became for_each
# instances. Without these, an apply would create each under its new
# address and destroy it under the old one: the same CloudWatch name, so
# the destroy would delete what the create had just put.

moved {
  from = aws_cloudwatch_log_metric_filter.operations_requested
  to   = aws_cloudwatch_log_metric_filter.from_logs["operations-requested"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.youtube_refusals
  to   = aws_cloudwatch_log_metric_filter.from_logs["youtube-refusals"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.songs_finished_encoded
  to   = aws_cloudwatch_log_metric_filter.from_logs["songs-finished-encoded"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.songs_finished_cached
  to   = aws_cloudwatch_log_metric_filter.from_logs["songs-finished-cached"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.operations_failed[0]
  to   = aws_cloudwatch_log_metric_filter.from_logs["operations-failed-resolve"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.operations_failed[1]
  to   = aws_cloudwatch_log_metric_filter.from_logs["operations-failed-fetch"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.operations_failed[2]
  to   = aws_cloudwatch_log_metric_filter.from_logs["operations-failed-encode"]
}
moved {
  from = aws_cloudwatch_log_metric_filter.webhooks_given_up[0]
  to   = aws_cloudwatch_log_metric_filter.from_logs["webhooks-given-up"]
}
moved {
  from = aws_cloudwatch_metric_alarm.backlog_growing[0]
  to   = aws_cloudwatch_metric_alarm.expression["resolver-backlog-growing"]
}
moved {
  from = aws_cloudwatch_metric_alarm.backlog_growing[1]
  to   = aws_cloudwatch_metric_alarm.expression["fetcher-backlog-growing"]
}
moved {
  from = aws_cloudwatch_metric_alarm.backlog_growing[2]
  to   = aws_cloudwatch_metric_alarm.expression["encoder-backlog-growing"]
}
moved {
  from = aws_cloudwatch_metric_alarm.stage_failure_ratio[0]
  to   = aws_cloudwatch_metric_alarm.expression["resolve-failure-ratio"]
}
moved {
  from = aws_cloudwatch_metric_alarm.stage_failure_ratio[1]
  to   = aws_cloudwatch_metric_alarm.expression["fetch-failure-ratio"]
}
moved {
  from = aws_cloudwatch_metric_alarm.stage_failure_ratio[2]
  to   = aws_cloudwatch_metric_alarm.expression["encode-failure-ratio"]
}
moved {
  from = aws_cloudwatch_metric_alarm.youtube_refusing[0]
  to   = aws_cloudwatch_metric_alarm.expression["youtube-refusing"]
}
moved {
  from = aws_cloudwatch_metric_alarm.no_songs_finishing[0]
  to   = aws_cloudwatch_metric_alarm.expression["no-songs-finishing"]
}
moved {
  from = aws_cloudwatch_metric_alarm.projection_lag
  to   = aws_cloudwatch_metric_alarm.metric["projection-lag"]
}
moved {
  from = aws_cloudwatch_metric_alarm.ytdlp_stale
  to   = aws_cloudwatch_metric_alarm.metric["ytdlp-stale"]
}
moved {
  from = aws_cloudwatch_metric_alarm.webhooks_given_up[0]
  to   = aws_cloudwatch_metric_alarm.metric["webhooks-given-up"]
}
