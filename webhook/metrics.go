package webhook

import "github.com/prometheus/client_golang/prometheus"

// OutcomeErrored counts requests the handler could not read.
const OutcomeErrored Outcome = "errored"

// Metrics are guardchain's own Prometheus metrics.
type Metrics struct {
	// Admissions counts answers by outcome and reason (the same reason as
	// the warning and the log line).
	Admissions *prometheus.CounterVec
	// GenericReviews counts reviews the one-pass decoder left to
	// controller-runtime's (package podreview). Steadily rising, it means the API
	// server sends fields this build does not know: each such review costs
	// about twice as much.
	GenericReviews prometheus.Counter
}

// NewMetrics registers guardchain's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guardchain_admissions_total",
			Help: "Pod admissions answered by guardchain, by outcome (injected, unchanged, skipped, denied, errored) and reason.",
		}, []string{"outcome", "reason"}),
		GenericReviews: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "guardchain_admission_reviews_generic_decode_total",
			Help: "Admission reviews not read by the one-pass decoder (another version, an unknown field, a malformed body) but by controller-runtime's.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Admissions, m.GenericReviews} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
