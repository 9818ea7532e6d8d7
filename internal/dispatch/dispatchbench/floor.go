package dispatchbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/store"
)

// Floor is what the bare input/output of a submission costs the
// dispatcher's side on this machine, measured the way CPUSplit.Own is (a
// labelled CPU profile, GC and scheduler background excluded), with none
// of our logic around it. Own CPU per submission cannot go below
// PerSubmission without fewer round trips or cheaper ones than the
// libraries we build on (net/http, database/sql with go-sql-driver/mysql)
// and the kernel's loopback give.
type Floor struct {
	// HTTPPost is one provider-sized POST and its answer through the
	// providers' transport (wechatpay.NewTransport) to a local net/http
	// server that answers at once: request line, headers and body written,
	// answer read and parsed, connection reused.
	HTTPPost time.Duration
	// SQLRoundTrip is one statement to MariaDB and its answer (a one-row
	// UPDATE by primary key, autocommit) through the store's pool straight
	// to database/sql, the path of the dispatcher's statements.
	SQLRoundTrip time.Duration
}

// PerSubmission is the floor of a submission that sends one request and
// needs statements round trips to the database.
func (f Floor) PerSubmission(statements float64) time.Duration {
	return f.HTTPPost + time.Duration(statements*float64(f.SQLRoundTrip))
}

func (f Floor) String() string {
	return fmt.Sprintf("HTTP POST %s, SQL round trip %s", round(f.HTTPPost), round(f.SQLRoundTrip))
}

// The shape of a WeChat submission and its answer, in bytes that matter
// to the transport: a body of about 150 bytes, an Authorization header of
// about 500 (the 344-character signature), and an answer with WeChat's
// five signature headers.
var (
	floorBody = []byte(`{"sub_mchid":"1900000109","out_request_no":"B1234567","amount":100,` +
		`"remark":"withdraw","bank_memo":"withdraw","account_type":"BASIC"}`)
	floorAuth = `WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="` + strings.Repeat("N", 32) +
		`",signature="` + strings.Repeat("S", 344) + `",timestamp="1700000000",serial_no="` + strings.Repeat("C", 40) + `"`
	floorAnswer = []byte(`{"sub_mchid":"1900000109","withdraw_id":"12321937198237912739132791732123","out_request_no":"B1234567"}`)
)

// MeasureFloor times n bare HTTP POSTs (inFlight at a time, like the
// dispatcher's call slots) and n SQL round trips (16 at a time) in db.
func MeasureFloor(ctx context.Context, db *store.DB, n, inFlight int) (Floor, error) {
	post, err := measureHTTPPost(ctx, n, inFlight)
	if err != nil {
		return Floor{}, fmt.Errorf("HTTP floor: %w", err)
	}
	sql, err := measureSQLRoundTrip(ctx, db, n, 16)
	if err != nil {
		return Floor{}, fmt.Errorf("SQL floor: %w", err)
	}
	return Floor{HTTPPost: post, SQLRoundTrip: sql}, nil
}

// measureHTTPPost returns the client side's CPU per POST.
func measureHTTPPost(ctx context.Context, n, inFlight int) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set(wechatpay.HeaderRequestID, "08F78BB5AF0610D302100B1A4C1DE80B")
		h.Set(wechatpay.HeaderNonce, strings.Repeat("n", 32))
		h.Set(wechatpay.HeaderSignature, strings.Repeat("s", 344))
		h.Set(wechatpay.HeaderTimestamp, "1700000000")
		h.Set(wechatpay.HeaderSerial, strings.Repeat("P", 40))
		_, _ = w.Write(floorAnswer)
	})}
	// The server's goroutines (and its connections') carry the sandbox's
	// label, so that only the client's CPU counts.
	go pprof.Do(ctx, pprof.Labels(sideLabel, sideSandbox), func(context.Context) { _ = srv.Serve(ln) })
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v3/ecommerce/fund/withdraw"
	client := &http.Client{Transport: wechatpay.NewTransport()}
	defer client.CloseIdleConnections()
	return clientCPU(ctx, n, inFlight, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(floorBody))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", floorAuth)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", wechatpay.UserAgent)
		req.Header.Set("Content-Type", "application/json")
		resp, err := wechatpay.RoundTrip(client, req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || string(b) != string(floorAnswer) {
			return fmt.Errorf("answer %d %q", resp.StatusCode, b)
		}
		return nil
	})
}

// measureSQLRoundTrip returns the client side's CPU per statement. It
// checks afterwards that every update landed.
func measureSQLRoundTrip(ctx context.Context, db *store.DB, n, inFlight int) (time.Duration, error) {
	const rows = 1000
	if err := db.Gorm().WithContext(ctx).Exec("CREATE TABLE bench_floor (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL)").Error; err != nil {
		return 0, err
	}
	defer db.Gorm().Exec("DROP TABLE bench_floor")
	values := strings.TrimSuffix(strings.Repeat("(?, 0, ?),", rows), ",")
	args := make([]any, 0, 2*rows)
	for i := range rows {
		args = append(args, i, time.Now().UTC())
	}
	if _, err := exec(ctx, db, "INSERT INTO bench_floor (id, v, updated_at) VALUES "+values, args...); err != nil {
		return 0, err
	}
	var next atomic.Int64
	per, err := clientCPU(ctx, n, inFlight, func(ctx context.Context) error {
		id := next.Add(1) % rows
		got, err := exec(ctx, db, "UPDATE bench_floor SET v = v + 1, updated_at = ? WHERE id = ?", time.Now().UTC(), id)
		if err == nil && got != 1 {
			err = fmt.Errorf("updated %d rows, want 1", got)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var sum int64
	if err := db.Gorm().WithContext(ctx).Raw("SELECT COALESCE(SUM(v), 0) FROM bench_floor").Scan(&sum).Error; err != nil {
		return 0, err
	}
	if sum != int64(n) {
		return 0, fmt.Errorf("%d updates counted, want %d", sum, n)
	}
	return per, nil
}

// exec runs a complete statement on the pool's connection, as the store's
// hand-built statements do: straight to database/sql, no GORM statement
// building.
func exec(ctx context.Context, db *store.DB, q string, args ...any) (int64, error) {
	res, err := db.Gorm().Statement.ConnPool.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// clientCPU runs op n times, inFlight at a time, in goroutines labelled as
// the dispatcher's, and returns their CPU per op from a profile of the run.
func clientCPU(ctx context.Context, n, inFlight int, op func(context.Context) error) (time.Duration, error) {
	stop, err := cpuProfile(nil)
	if err != nil {
		return 0, err
	}
	var (
		wg    sync.WaitGroup
		left  atomic.Int64
		mu    sync.Mutex
		first error
	)
	left.Store(int64(n))
	ctx = withSide(ctx, sideDispatcher)
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pprof.SetGoroutineLabels(ctx)
			for left.Add(-1) >= 0 {
				if err := op(ctx); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	raw, err := stop()
	if err != nil {
		return 0, err
	}
	if first != nil {
		return 0, first
	}
	split, err := splitCPU(raw, n)
	if err != nil {
		return 0, err
	}
	return split.Own, nil
}
