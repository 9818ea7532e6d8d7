// Package dispatchbench measures the dispatcher against the provider
// sandbox: submissions per second with a zero-latency provider (bounded by
// RSA signing on this machine), our own CPU per submission beyond the
// signatures, and throughput under provider latency.
package dispatchbench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
	"gopkg.in/yaml.v3"
)

// SignCost times one RSA-2048 PKCS#1 v1.5 SHA-256 signature and one
// verification in this process: the best of several trials, because on a
// shared 2-core machine a single trial swings by ±30% with whatever else
// runs, and the signing bound is a property of the machine, not of the
// moment.
func SignCost() (sign, verify time.Duration, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return 0, 0, err
	}
	msg := sha256.Sum256([]byte("POST\n/v3/merchant/fund/withdraw\n1700000000\nnonce\n{\"out_request_no\":\"1\"}\n"))
	const trials, n = 7, 50
	var sig []byte
	for range trials {
		start := time.Now()
		for range n {
			if sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, msg[:]); err != nil {
				return 0, 0, err
			}
		}
		if d := time.Since(start) / n; sign == 0 || d < sign {
			sign = d
		}
		start = time.Now()
		for range n {
			if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, msg[:], sig); err != nil {
				return 0, 0, err
			}
		}
		if d := time.Since(start) / n; verify == 0 || d < verify {
			verify = d
		}
	}
	return sign, verify, nil
}

// Options of one run.
type Options struct {
	DB          *store.DB
	N           int           // withdrawals
	Merchants   int           // distinct sub-merchants (e-commerce channel)
	MaxInFlight int           // the dispatcher's global cap
	Latency     time.Duration // added by the sandbox to every submission
	// Prefix starts the out_request_no of the run's withdrawals (default
	// "B"); runs in one database need different ones.
	Prefix string
	// ProfileTo, when set, receives the run's CPU profile (the one that
	// Result.Split is computed from), for go tool pprof; its goroutines
	// carry the label side=dispatcher or side=sandbox.
	ProfileTo io.Writer
}

// Result of one run.
type Result struct {
	N                int
	Elapsed          time.Duration
	PerSec           float64
	CPUPerSubmission time.Duration // this process (dispatcher + sandbox), MariaDB excluded
	Split            CPUSplit      // CPUPerSubmission by side, from a CPU profile of the run
	// Statements is how many statements MariaDB received while the
	// dispatcher ran (its Questions counter; the harness's few included).
	Statements int64
}

// StatementsPerSubmission is Statements over N: the database round trips
// a submission costs, claim and record batches shared out.
func (r Result) StatementsPerSubmission() float64 {
	if r.N == 0 {
		return 0
	}
	return float64(r.Statements) / float64(r.N)
}

// Run seeds N ACCEPTED e-commerce withdrawals over Merchants sub-merchants,
// starts a sandbox and one dispatcher in this process, and times until all
// are SUBMITTED. It checks that the sandbox created each order once. The
// database may hold other withdrawals, none of them due for the dispatcher
// and none with an out_request_no starting with Prefix.
func Run(ctx context.Context, o Options) (Result, error) {
	dir, err := os.MkdirTemp("", "dispatchbench")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	reg, srv, err := startSandbox(withSide(ctx, sideSandbox), dir, o.Latency)
	if err != nil {
		return Result{}, err
	}
	defer srv.Close()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("bench"))
	if err != nil {
		return Result{}, err
	}
	if o.Prefix == "" {
		o.Prefix = "B"
	}
	if err := seed(ctx, o.DB, keys, o.N, o.Merchants, o.Prefix); err != nil {
		return Result{}, err
	}

	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4}))
	// recorded counts the answers written: the harness looks at the table
	// only once there are N of them (or once a second, to notice a run that
	// went wrong). Polling the table every 100 ms had cost MariaDB about 10%
	// of its CPU in the run and made the end time 100 ms coarse.
	var recorded atomic.Int64
	d, err := dispatch.New(o.DB, reg, keys, dispatch.Options{
		Instance: "bench", MaxInFlight: o.MaxInFlight, ClaimBatch: 256, Rules: schedule.Accelerated(),
		DefaultRate: dispatch.Rate{PerSecond: 1e6, Burst: 1000}, Logger: quiet, // the default poll interval: Notify drives it
		OnChange: func() { recorded.Add(1) },
	})
	if err != nil {
		return Result{}, err
	}
	runCtx, cancel := context.WithCancel(withSide(ctx, sideDispatcher))
	defer cancel()
	stopProfile, err := cpuProfile(o.ProfileTo)
	if err != nil {
		return Result{}, err
	}
	profiling := true
	defer func() {
		if profiling {
			_, _ = stopProfile()
		}
	}()
	questions0, err := store.StatementsReceived(ctx, o.DB)
	if err != nil {
		return Result{}, err
	}
	cpu0 := cpuTime()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		pprof.SetGoroutineLabels(runCtx)
		done <- d.Run(runCtx)
	}()
	lastLook := start
	for {
		time.Sleep(2 * time.Millisecond)
		if recorded.Load() < int64(o.N) && time.Since(lastLook) < time.Second {
			continue
		}
		lastLook = time.Now()
		counts, err := benchCounts(ctx, o.DB, o.Prefix)
		if err != nil {
			return Result{}, err
		}
		if counts["SUBMITTED"] == int64(o.N) {
			break
		}
		if counts["FAILED"]+counts["UNKNOWN"] > 0 {
			return Result{}, fmt.Errorf("benchmark withdrawals did not all submit cleanly: %v", counts)
		}
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	profiling = false
	raw, err := stopProfile()
	if err != nil {
		return Result{}, err
	}
	split, err := splitCPU(raw, o.N)
	if err != nil {
		return Result{}, err
	}
	questions1, err := store.StatementsReceived(ctx, o.DB)
	if err != nil {
		return Result{}, err
	}
	cancel()
	<-done
	for _, ord := range srv.Ledger().Orders {
		if ord.Created != 1 {
			return Result{}, fmt.Errorf("order %s created %d times", ord.OutRequestNo, ord.Created)
		}
	}
	return Result{N: o.N, Elapsed: elapsed, PerSec: float64(o.N) / elapsed.Seconds(), CPUPerSubmission: cpu / time.Duration(o.N), Split: split,
		Statements: questions1 - questions0}, nil
}

// benchCounts counts the run's withdrawals by state. Only the run's: the
// database may hold months of other withdrawals (bench scale), and a count
// of the whole table would both see their FAILED rows and load the server
// in proportion to them.
func benchCounts(ctx context.Context, db *store.DB, prefix string) (map[string]int64, error) {
	var rows []struct {
		State string
		N     int64
	}
	if err := db.Gorm().WithContext(ctx).Raw("SELECT state, COUNT(*) AS n FROM withdrawals WHERE out_request_no LIKE ? GROUP BY state", prefix+"%").
		Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count the run's withdrawals: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}

// Sandbox is a provider sandbox served in this process, with one WeChat
// Pay merchant (MchID) configured as account "default" of Registry.
type Sandbox struct {
	Registry *provider.Registry
	Server   *sandbox.Server
	srv      *sandboxServer
	dir      string
}

// MchID is the merchant of the sandbox's account "default".
const MchID = "1900000109"

// StartSandbox starts a sandbox whose orders stay CREATE_SUCCESS for an
// hour after their creation (then SUCCESS), and a registry of clients for
// it. Close stops it.
func StartSandbox(ctx context.Context) (*Sandbox, error) {
	dir, err := os.MkdirTemp("", "dispatchbench")
	if err != nil {
		return nil, err
	}
	reg, srv, err := startSandbox(ctx, dir, 0)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Sandbox{Registry: reg, Server: srv.Server, srv: srv, dir: dir}, nil
}

// Close stops the sandbox and removes its key files.
func (s *Sandbox) Close() {
	s.srv.Close()
	os.RemoveAll(s.dir)
}

// startSandbox starts the sandbox's server with ctx's goroutine labels, so
// that its goroutines (and the connections' goroutines they start) carry
// them.
func startSandbox(ctx context.Context, dir string, latency time.Duration) (*provider.Registry, *sandboxServer, error) {
	keys, err := sandbox.GenerateKeys()
	if err != nil {
		return nil, nil, err
	}
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	const mchID, serial = MchID, "BENCH0000000000000000000000000000000000"
	apiv3 := []byte("benchAPIv3Key0123456789abcdefXYZ")
	opts := sandbox.Options{Keys: keys, Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour},
		WeChatMerchants: []sandbox.WeChatMerchant{{MchID: mchID, Serial: serial, PublicKey: &merchant.PublicKey, APIv3Key: apiv3}},
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4}))}
	if latency > 0 {
		opts.Faults = map[string]sandbox.Fault{sandbox.EndpointEcommerceSubmit: {Latency: latency}}
	}
	var srv *sandbox.Server
	var hs *httptest.Server
	pprof.Do(ctx, pprof.Labels(), func(context.Context) {
		if srv, err = sandbox.New(opts); err == nil {
			hs = httptest.NewServer(srv.Handler())
		}
	})
	if err != nil {
		return nil, nil, err
	}
	pk := srv.PublicKeys()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, b, 0o600)
		return p
	}
	cfgYAML, err := yaml.Marshal(map[string]any{"accounts": []map[string]any{{
		"name": "default", "provider": "wechatpay", "base_url": hs.URL, "timeout": "10s",
		"mchid": mchID, "cert_serial": serial,
		"private_key_file": write("merchant.pem", sandbox.PrivatePEM(merchant)),
		"public_key_id":    pk.PublicKeyID, "public_key_file": write("wxpub.pem", []byte(pk.PublicKeyPEM)),
		"apiv3_key_file": write("apiv3.key", apiv3),
	}}})
	if err != nil {
		return nil, nil, err
	}
	cfg, err := provider.ParseConfig(cfgYAML)
	if err != nil {
		return nil, nil, err
	}
	reg, err := clients.New(cfg, clients.Options{Logger: opts.Logger})
	if err != nil {
		return nil, nil, err
	}
	return reg, &sandboxServer{Server: srv, hs: hs}, nil
}

type sandboxServer struct {
	*sandbox.Server
	hs *httptest.Server
}

func (s *sandboxServer) Close() {
	s.hs.Close()
	s.Server.Close()
}

func seed(ctx context.Context, db *store.DB, keys *pii.Keyring, n, merchants int, prefix string) error {
	now := time.Now().UTC()
	for i := 0; i < n; i += 1000 {
		var rows []store.Withdrawal
		var events []store.OutboxEvent
		for j := i; j < min(i+1000, n); j++ {
			c := &withdrawal.Command{Channel: withdrawal.ChannelWeChatEcommerce, Account: "default",
				OutRequestNo: fmt.Sprintf("%s%d", prefix, j), Amount: 100, SubMchID: fmt.Sprintf("19%08d", j%merchants), AccountType: "BASIC"}
			h, _ := withdrawal.ParamsHash(c)
			row, err := store.NewWithdrawalRow(withdrawal.NewID(), c, h, keys, now)
			if err != nil {
				return err
			}
			rec, err := outbox.Record(row.Event(withdrawal.NewID(), "", now), now)
			if err != nil {
				return err
			}
			rows, events = append(rows, row), append(events, rec)
		}
		if err := store.InsertWithdrawals(ctx, db, rows); err != nil {
			return err
		}
		if err := store.InsertOutbox(ctx, db, events); err != nil {
			return err
		}
	}
	return nil
}

// cpuTime is the user+system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Cores is the number of CPUs the signing bound divides.
func Cores() int { return runtime.NumCPU() }
