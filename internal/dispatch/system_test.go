package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// The system test runs dispatchers as separate processes: this test binary
// re-executed with childEnv set runs one dispatcher until it is killed.
const childEnv = "DISPATCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := childMain(); err != nil {
			fmt.Fprintln(os.Stderr, "dispatcher child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childMain is a dispatcher process configured by environment variables.
func childMain() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	db, err := store.OpenMySQL(ctx, os.Getenv("CHILD_DSN"), store.PoolOptions{MaxOpen: 40})
	if err != nil {
		return err
	}
	keys, err := pii.LoadKeyringFile(os.Getenv("CHILD_PII_KEYS"))
	if err != nil {
		return err
	}
	cfg, err := provider.LoadConfig(os.Getenv("CHILD_PROVIDERS"))
	if err != nil {
		return err
	}
	// Injected faults make every client log an error; keep the test output
	// to what fails.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4}))
	reg, err := clients.New(cfg, clients.Options{Logger: log})
	if err != nil {
		return err
	}
	d, err := dispatch.New(db, reg, keys, dispatch.Options{
		Instance: os.Getenv("CHILD_NAME"), Rules: schedule.Accelerated(), PollInterval: 20 * time.Millisecond,
		LeaseTTL: 5 * time.Second, Logger: log,
	})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// TestDispatchSystemKillNeverPayTwice is the proof: thousands of
// withdrawals across channels and 50 merchants, 20% faults of every kind at
// the provider, two dispatcher processes, one SIGKILLed mid-run and
// restarted. Afterwards nothing was created twice at the provider, nothing
// is left ACCEPTED/SUBMITTING/UNKNOWN, the per-merchant cap held, and every
// withdrawal's events are gap-free.
//
// Not parallel: its dispatcher processes take the machine for a while, so
// it runs alone, before the parallel tests start.
func TestDispatchSystemKillNeverPayTwice(t *testing.T) {
	n := 10000
	if testing.Short() || raceEnabled {
		n = 2000
	}
	fault := sandbox.Fault{
		Latency:            time.Millisecond,
		Rate5xx:            0.05,
		Rate429:            0.05,
		Errors:             map[string]float64{"SYSTEM_ERROR": 0.05},
		TimeoutAfterCommit: 0.05,
	}
	r := newRig(t, sandbox.Options{Seed: 42, Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour},
		Faults: map[string]sandbox.Fault{
			sandbox.EndpointEcommerceSubmit: fault, sandbox.EndpointPlatformSubmit: fault,
			sandbox.EndpointCancelSubmit: fault, sandbox.EndpointAllinpaySubmit: fault,
		}})

	// 80% over 48 sub-merchants (e-commerce and cancel), 10% platform, 10% Allinpay.
	var cmds []*withdrawal.Command
	for i := range n {
		var c *withdrawal.Command
		switch i % 10 {
		case 0:
			c = commandFor(withdrawal.ChannelWeChatPlatform, i)
		case 1:
			c = commandFor(withdrawal.ChannelAllinpayShopoint, i)
		case 2, 3:
			c = commandFor(withdrawal.ChannelWeChatCancel, i)
		default:
			c = commandFor(withdrawal.ChannelWeChatEcommerce, i)
		}
		if c.SubMchID != "" {
			c.SubMchID = fmt.Sprintf("19%08d", i%48)
		}
		cmds = append(cmds, c)
	}
	for i := 0; i < len(cmds); i += 1000 {
		r.seed(cmds[i:min(i+1000, len(cmds))]...)
	}

	dir := t.TempDir()
	keysFile := filepath.Join(dir, "pii.keys")
	writeFile(t, keysFile, exportKeyring(t, r))
	providersFile := filepath.Join(dir, "providers.yaml")
	b, err := yaml.Marshal(r.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, providersFile, string(b))
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_NAME="+name, "CHILD_DSN="+r.dsn,
			"CHILD_PII_KEYS="+keysFile, "CHILD_PROVIDERS="+providersFile)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	a := start("a")
	b2 := start("b")

	// Kill A once a third of the work is done.
	r.waitFor(3*time.Minute, func(c map[string]int64) bool { return c["SUBMITTED"]+c["FAILED"] >= int64(n/3) })
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	t.Log("dispatcher a killed")
	start("a2")

	r.waitSettled(8 * time.Minute)
	_ = b2.Process.Signal(syscall.SIGTERM)

	r.env.AssertPaidAtMostOnce()
	ledger := r.env.Ledger()
	created := 0
	for _, o := range ledger.Orders {
		created += o.Created
	}
	for m, max := range ledger.MaxInFlight {
		if max > 1 {
			t.Errorf("merchant %s had %d submissions in flight, cap 1", m, max)
		}
	}
	counts, _ := store.CountByState(context.Background(), r.db)
	t.Logf("states %v; provider created %d orders for %d withdrawals", counts, created, n)
	if counts["SUBMITTED"] != int64(n) || created != n {
		t.Errorf("want all %d SUBMITTED and created once each; states %v, created %d", n, counts, created)
	}
	storetest.AssertVersionsGapFree(t, r.db)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
