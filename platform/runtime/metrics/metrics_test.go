package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newJoins() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "test_joins_total", Help: "Joins.",
	}, []string{"what"})
}

// TestRegister: two components of one process that declare the same
// collector count into one exported series; without a registry a
// collector still records, and nothing exports it.
func TestRegister(t *testing.T) {
	m := New(NewRegistry())
	a := Register(m, newJoins())
	b := Register(m, newJoins())
	a.WithLabelValues("fetch").Inc()
	b.WithLabelValues("fetch").Inc()
	want := `
# HELP butakero_test_joins_total Joins.
# TYPE butakero_test_joins_total counter
butakero_test_joins_total{what="fetch"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "butakero_test_joins_total"); err != nil {
		t.Fatal(err)
	}

	loose := Register(nil, newJoins())
	loose.WithLabelValues("fetch").Inc()
	if got := testutil.ToFloat64(loose.WithLabelValues("fetch")); got != 1 {
		t.Fatalf("unregistered collector counted %v; want 1", got)
	}

	defer func() {
		if recover() == nil {
			t.Fatal("a different collector under a registered name did not panic")
		}
	}()
	Register(m, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "test_joins_total", Help: "Other."}))
}
