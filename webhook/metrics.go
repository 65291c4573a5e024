package webhook

import "github.com/prometheus/client_golang/prometheus"

// OutcomeErrored counts requests the handler could not read.
const OutcomeErrored Outcome = "errored"

// Metrics are guardchain's own Prometheus metrics.
type Metrics struct {
	// Admissions counts answers by outcome and reason (the same reason as
	// the warning and the log line).
	Admissions *prometheus.CounterVec
}

// NewMetrics registers guardchain's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guardchain_admissions_total",
			Help: "Pod admissions answered by guardchain, by outcome (injected, unchanged, skipped, denied, errored) and reason.",
		}, []string{"outcome", "reason"}),
	}
	if err := reg.Register(m.Admissions); err != nil {
		return nil, err
	}
	return m, nil
}
