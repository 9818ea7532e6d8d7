package app

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/pii"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig are the default settings with a keyring, listening on a free
// port; MySQL and Kafka are never reached (Run is not called).
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.PIIKeysFile = filepath.Join(t.TempDir(), "pii.keys")
	if err := os.WriteFile(cfg.PIIKeysFile, []byte(pii.GenerateKeyLine("k1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestConsumerChecksConfigurationFirst: a wrong setting fails NewConsumer
// before anything listens; a right one serves /healthz at once, and
// /readyz names what is not there yet.
func TestConsumerChecksConfigurationFirst(t *testing.T) {
	cfg := testConfig(t)
	cfg.PIIKeysFile = ""
	if _, err := NewConsumer(cfg, quiet(), ConsumerOptions{}); err == nil || !strings.Contains(err.Error(), "--pii-keys-file") {
		t.Errorf("without keys: %v", err)
	}
	cfg = testConfig(t)
	if _, err := NewConsumer(cfg, quiet(), ConsumerOptions{}); err == nil || !strings.Contains(err.Error(), "--dispatch=false") {
		t.Errorf("dispatching without provider accounts: %v", err)
	}
	cfg.AdminTokenFile = filepath.Join(t.TempDir(), "missing.token")
	cfg.DispatchEnabled = false
	if _, err := NewConsumer(cfg, quiet(), ConsumerOptions{}); err == nil {
		t.Error("a missing admin token file was accepted")
	}

	cfg.AdminTokenFile = ""
	c, err := NewConsumer(cfg, quiet(), ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, _ := get(t, "http://"+c.Addr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	code, body := get(t, "http://"+c.Addr()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"mysql":"not connected yet: not tried yet"`) ||
		!strings.Contains(body, `"intake":"not started`) || !strings.Contains(body, `"relay":"not started: waiting for MySQL and the Kafka topics"`) {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, _ := get(t, "http://"+c.Addr()+"/v1/withdrawals/x"); code != http.StatusServiceUnavailable {
		t.Errorf("admin route before the database = %d, want 503", code)
	}
}

// TestPollerNeedsProviderAccounts: the poller has nothing to query without
// WITHDRAW_CONFIG.
func TestPollerNeedsProviderAccounts(t *testing.T) {
	if _, err := NewPoller(testConfig(t), quiet()); err == nil || !strings.Contains(err.Error(), "WITHDRAW_CONFIG") {
		t.Errorf("NewPoller without accounts: %v", err)
	}
}

// TestPipelineRunsEverything: a pipeline refuses settings that would leave
// a component out.
func TestPipelineRunsEverything(t *testing.T) {
	cfg := testConfig(t)
	cfg.RelayEnabled = false
	if _, err := NewPipeline(cfg, nil, nil, nil, quiet()); err == nil || !strings.Contains(err.Error(), "RelayEnabled") {
		t.Errorf("pipeline without relay: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
