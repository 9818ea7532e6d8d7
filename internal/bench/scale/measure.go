package scale

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"time"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openOne opens dsn with a pool of one connection, so that the session's
// status counters are the code's own (store.IndexRowsRead).
func openOne(ctx context.Context, dsn string) (*store.DB, error) {
	return store.OpenMySQL(ctx, dsn, store.PoolOptions{MaxOpen: 1})
}

// IdleSweepResult is an idle poller's cost per sweep.
type IdleSweepResult struct {
	Sweeps        int
	PerSweep      time.Duration
	IndexRowsRead float64 // per sweep
	Claimed       int     // must be 0: nothing is due
}

// IdleSweep runs sweeps of a poller (production rules, default options) on
// the database at dsn, through one connection, and returns the time and the
// index rows read per sweep. Nothing may be due.
func IdleSweep(ctx context.Context, dsn string, sweeps int) (IdleSweepResult, error) {
	rs, err := IdleSweeps(ctx, []string{dsn}, sweeps)
	if err != nil {
		return IdleSweepResult{}, err
	}
	return rs[0], nil
}

// IdleSweeps is IdleSweep on several databases at once, one sweep of each
// in turn, so that each database's sweeps see the same moments of the
// host: an idle sweep is a handful of round trips, and their time swings
// by more than twice from one second to the next on a shared machine.
func IdleSweeps(ctx context.Context, dsns []string, sweeps int) ([]IdleSweepResult, error) {
	type one struct {
		db      *store.DB
		p       *poll.Poller
		before  int64
		elapsed time.Duration
		res     IdleSweepResult
	}
	all := make([]*one, 0, len(dsns))
	defer func() {
		for _, o := range all {
			o.db.Close()
		}
	}()
	for _, dsn := range dsns {
		db, err := openOne(ctx, dsn)
		if err != nil {
			return nil, err
		}
		o := &one{db: db, res: IdleSweepResult{Sweeps: sweeps}}
		all = append(all, o)
		if o.p, err = poll.New(db, provider.NewRegistry(), poll.Options{Instance: "idle", Rules: schedule.Production(), Logger: quiet()}); err != nil {
			return nil, err
		}
		if _, err := o.p.Sweep(ctx); err != nil { // warms the connection and the heartbeat row
			return nil, err
		}
		if o.before, err = store.IndexRowsRead(ctx, db); err != nil {
			return nil, err
		}
	}
	for range sweeps {
		for _, o := range all {
			start := time.Now()
			st, err := o.p.Sweep(ctx)
			o.elapsed += time.Since(start)
			if err != nil {
				return nil, err
			}
			o.res.Claimed += st.Claimed
		}
	}
	out := make([]IdleSweepResult, len(all))
	for i, o := range all {
		after, err := store.IndexRowsRead(ctx, o.db)
		if err != nil {
			return nil, err
		}
		o.res.PerSweep = o.elapsed / time.Duration(sweeps)
		// The counter's own SHOW reads none; what is left is the sweeps'.
		o.res.IndexRowsRead = float64(after-o.before) / float64(sweeps)
		out[i] = o.res
	}
	return out, nil
}

// IdleDispatcher runs a dispatcher with the default options (a look for due
// work every 250 ms, lease expiry) on the database at dsn, through one
// connection, for d, and returns the index rows it read per second.
func IdleDispatcher(ctx context.Context, dsn string, d time.Duration) (float64, error) {
	db, err := openOne(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("idle"))
	if err != nil {
		return 0, err
	}
	disp, err := dispatch.New(db, provider.NewRegistry(), keys, dispatch.Options{Instance: "idle", Rules: schedule.Production(), Logger: quiet()})
	if err != nil {
		return 0, err
	}
	before, err := store.IndexRowsRead(ctx, db)
	if err != nil {
		return 0, err
	}
	if _, err := disp.ExpireLeases(ctx); err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := disp.Run(runCtx); err != nil {
		return 0, err
	}
	after, err := store.IndexRowsRead(ctx, db)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / d.Seconds(), nil
}

// LookupResult is the admin API's answer times: the first ask of each
// withdrawal, with the pages as the database had them, and the same asks
// again, their pages now in the buffer pool.
type LookupResult struct {
	N                          int
	ByIDP50, ByIDP99           time.Duration
	ByKeyP50, ByKeyP99         time.Duration
	WarmByIDP50, WarmByIDP99   time.Duration
	WarmByKeyP50, WarmByKeyP99 time.Duration
}

// Lookups asks the admin API (in this process, over the store's usual
// pool) for n withdrawals of the fill chosen at random, once by id and
// once by out_request_no, and returns the percentiles of the answer times
// (row, events and audit read, JSON written). lastDays > 0 draws them from
// the fill's last days only (what operators mostly ask about); 0 from all
// of it, where most rows are no longer in the buffer pool.
func Lookups(ctx context.Context, db *store.DB, o FillOptions, n int, seed uint64, lastDays int) (LookupResult, error) {
	o.defaults()
	end := o.Now.Add(-24 * time.Hour)
	t0 := end.Add(-time.Duration(o.Days) * 24 * time.Hour)
	if lastDays > 0 && lastDays < o.Days {
		t0 = end.Add(-time.Duration(lastDays) * 24 * time.Hour)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	type key struct{ ID, Channel, No string }
	// 2n rows: the first n looked up by id, the others by out_request_no,
	// so that neither finds pages the other has just read.
	keys := make([]key, 0, 2*n)
	for len(keys) < 2*n {
		at := t0.Add(time.Duration(rng.Int64N(int64(end.Sub(t0)))))
		var k []key
		if err := db.Gorm().WithContext(ctx).Raw("SELECT id, channel, out_request_no AS no FROM withdrawals WHERE id >= ? AND id LIKE ? ORDER BY id LIMIT 1",
			idFloor(at), "%-7"+o.Kind+"-%").Scan(&k).Error; err != nil {
			return LookupResult{}, err
		}
		if len(k) == 0 {
			continue
		}
		keys = append(keys, k[0])
	}
	h, err := admin.New(db, admin.Options{Token: "bench", Logger: quiet()})
	if err != nil {
		return LookupResult{}, err
	}
	ask := func(path string) (time.Duration, error) {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer bench")
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		took := time.Since(start)
		if rec.Code != http.StatusOK {
			return 0, fmt.Errorf("admin %s: %d %s", path, rec.Code, rec.Body.String())
		}
		return took, nil
	}
	byID := func() ([]time.Duration, error) {
		ds := make([]time.Duration, 0, n)
		for _, k := range keys[:n] {
			d, err := ask("/v1/withdrawals/" + k.ID)
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		return ds, nil
	}
	byKey := func() ([]time.Duration, error) {
		ds := make([]time.Duration, 0, n)
		for _, k := range keys[n:] {
			d, err := ask("/v1/withdrawals?" + url.Values{"channel": {k.Channel}, "out_request_no": {k.No}}.Encode())
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		return ds, nil
	}
	var r LookupResult
	r.N = n
	for _, pass := range []struct{ p50, p99, k50, k99 *time.Duration }{
		{&r.ByIDP50, &r.ByIDP99, &r.ByKeyP50, &r.ByKeyP99},
		{&r.WarmByIDP50, &r.WarmByIDP99, &r.WarmByKeyP50, &r.WarmByKeyP99},
	} {
		ids, err := byID()
		if err != nil {
			return r, err
		}
		ks, err := byKey()
		if err != nil {
			return r, err
		}
		*pass.p50, *pass.p99, *pass.k50, *pass.k99 = pct(ids, 0.5), pct(ids, 0.99), pct(ks, 0.5), pct(ks, 0.99)
	}
	return r, nil
}

// pct is the nearest-rank p-quantile of sorted ds.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
