package relay

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value sums the metric of m named name over its labels: counter and gauge
// values, a histogram's sample count. For tests; -1 when there is no such
// metric.
func (m *Metrics) Value(name string) float64 {
	for _, c := range []prometheus.Collector{m.pending, m.oldestAge, m.lanesHeld, m.published, m.latency,
		m.errors, m.purged, m.batchSize, m.publishCalls} {
		dch := make(chan *prometheus.Desc, 1)
		c.Describe(dch)
		if d := <-dch; d == nil || !strings.Contains(d.String(), `fqName: "`+name+`"`) {
			continue
		}
		mch := make(chan prometheus.Metric, 16)
		go func() { c.Collect(mch); close(mch) }()
		sum := 0.0
		for metric := range mch {
			var pb dto.Metric
			if err := metric.Write(&pb); err != nil {
				return -1
			}
			switch {
			case pb.Counter != nil:
				sum += pb.Counter.GetValue()
			case pb.Gauge != nil:
				sum += pb.Gauge.GetValue()
			case pb.Histogram != nil:
				sum += float64(pb.Histogram.GetSampleCount())
			}
		}
		return sum
	}
	return -1
}
