package relay_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/testenv"
)

// The crash test re-runs this test binary as a "relay main": TestMain sees
// envChild and runs relayChildMain instead of the tests.
const (
	envChild      = "OUTBOX_TEST_RELAY_CHILD"
	envChildDSN   = "OUTBOX_TEST_CHILD_DSN"
	envChildTopic = "OUTBOX_TEST_CHILD_TOPIC"
)

// ackPause is how long the child sleeps after the broker acknowledged a
// call, before it may mark the rows: the parent kills it in that window.
const ackPause = time.Second

// announcingWriter prints "ACKED n" after every acknowledged call, then
// pauses.
type announcingWriter struct{ w *kafka.Writer }

func (a announcingWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := a.w.WriteMessages(ctx, msgs...); err != nil {
		return err
	}
	fmt.Printf("ACKED %d\n", len(msgs))
	time.Sleep(ackPause)
	return nil
}

func relayChildMain() int {
	ctx := context.Background()
	db, err := store.OpenMySQL(ctx, os.Getenv(envChildDSN), store.PoolOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w := relay.NewWriter(strings.Split(os.Getenv(testenv.EnvKafkaBrokers), ","), os.Getenv(envChildTopic))
	r, err := relay.New(db, announcingWriter{w}, relay.Options{
		Instance: "child", BatchSize: 100, Workers: 2, LeaseTTL: 4 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("RUNNING")
	_ = r.Run(ctx) // until SIGKILL
	return 0
}

// TestRelayCrashMidBatch kills a relay process after the broker
// acknowledged a batch and before the batch was marked published, then
// starts another relay: every event ends up on the topic in per-withdrawal
// version order; the replayed batch shows up as duplicates (same event_id).
func TestRelayCrashMidBatch(t *testing.T) {
	dsn := testenv.FreshDatabase(t)
	ctx := context.Background()
	db, err := store.OpenMySQL(ctx, dsn, store.PoolOptions{})
	must(t, err)
	defer db.Close()
	_, err = db.Migrate(ctx)
	must(t, err)
	brokers := testenv.KafkaBrokers(t)
	tp := topic(t, 4)
	const withdrawals, versions = 200, 10
	must(t, writeHistory(ctx, db, newWithdrawals(withdrawals), versions, 50, nil))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envChildDSN+"="+dsn, envChildTopic+"="+tp,
		testenv.EnvKafkaBrokers+"="+strings.Join(brokers, ","))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	// Let some acknowledged calls be marked, then kill the child right
	// after an acknowledgement, while it pauses before marking.
	lines := bufio.NewScanner(stdout)
	acks := 0
	timeout := time.AfterFunc(90*time.Second, func() { _ = cmd.Process.Kill() })
	for lines.Scan() {
		if !strings.HasPrefix(lines.Text(), "ACKED") {
			continue
		}
		acks++
		if countPending(t, db) <= withdrawals*versions-200 {
			break
		}
	}
	timeout.Stop()
	if countPending(t, db) > withdrawals*versions-200 {
		t.Fatalf("child relay ended after %d acknowledged calls", acks)
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed = true
	pending := countPending(t, db)
	t.Logf("child killed after %d acknowledged calls; %d of %d rows pending", acks, pending, withdrawals*versions)
	if pending == 0 || pending == withdrawals*versions {
		t.Fatalf("%d rows pending: the crash was not mid-run", pending)
	}

	// The child's lanes free up when its 4s leases expire.
	w := relay.NewWriter(brokers, tp)
	defer w.Close()
	r := newRelay(t, db, w, relay.Options{Instance: "restarted", LeaseTTL: 2 * time.Second})
	startRelay(t, r)
	waitPublished(t, db, 60*time.Second)

	rep := checkOrder(t, readTopic(t, brokers, tp, 4))
	t.Logf("topic: %s", fmtReport(rep))
	if rep.distinct != withdrawals*versions || rep.keys != withdrawals {
		t.Fatalf("topic holds %s, want %d events", fmtReport(rep), withdrawals*versions)
	}
	if rep.duplicates == 0 {
		t.Fatal("no duplicates: the batch acknowledged before the kill was not replayed?")
	}
}
