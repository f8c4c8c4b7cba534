package metrics

import (
	"time"

	"github.com/butakero/butakero/platform/runtime/versions"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	ytdlpInfoDesc = prometheus.NewDesc(Namespace+"_ytdlp_info",
		"Always 1, labelled with the version of yt-dlp this process runs (\"unknown\" when it cannot be run), once probed at start.",
		[]string{"version"}, nil)
	ytdlpAgeDesc = prometheus.NewDesc(Namespace+"_ytdlp_age_days",
		"Whole days since the release of the yt-dlp this process runs (its version is its release date); past 90, YouTube downloads likely fail. Absent when yt-dlp cannot be run or its version is not a date.",
		nil, nil)
)

// WatchVersions registers a collector of yt-dlp's version and age, read
// at each scrape from p's start-up probe (nothing before the probe is done).
// The age is counted at the scrape, so a long-running process ages with
// its yt-dlp. Call it once per Metrics.
func (m *Metrics) WatchVersions(p *versions.Prober) {
	if m == nil || p == nil {
		return
	}
	m.reg.MustRegister(&ytdlpCollector{p: p, now: time.Now})
}

type ytdlpCollector struct {
	p   *versions.Prober
	now func() time.Time
}

func (c *ytdlpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ytdlpInfoDesc
	ch <- ytdlpAgeDesc
}

func (c *ytdlpCollector) Collect(ch chan<- prometheus.Metric) {
	y, ok := c.p.YTDLP()
	if !ok {
		return
	}
	v := y.Version
	if v == "" {
		v = "unknown"
	}
	ch <- prometheus.MustNewConstMetric(ytdlpInfoDesc, prometheus.GaugeValue, 1, v)
	if age, ok := y.AgeAt(c.now()); ok {
		ch <- prometheus.MustNewConstMetric(ytdlpAgeDesc, prometheus.GaugeValue, float64(age))
	}
}
