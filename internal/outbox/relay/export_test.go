package relay

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/paycore/withdraw/internal/store"
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

// ClaimPendingIDs is claimPending for tests: the ids it reads and its full
// report. backlog skips the MySQL probe.
func ClaimPendingIDs(ctx context.Context, db *store.DB, lanes []int, perLane int, exclude map[int][]int64, backlog bool) ([]int64, bool, error) {
	rows, full, err := claimPending(ctx, db, lanes, perLane, exclude, backlog)
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	return ids, full, err
}

// ProbeQuery is the statement of claimPending's probe, for plan tests.
func ProbeQuery(lanes []int, limit int) string { return probeQuery(lanes, limit, nil) }
