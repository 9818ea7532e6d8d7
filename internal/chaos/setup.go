package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/paycore/withdraw/internal/provider/sandbox/sandboxstack"
)

// Identity of the suite's provider accounts.
var identity = sandboxstack.Identity{
	MchID:      "1900000109",
	CertSerial: "CHAOS00000000000000000000000000000000000",
	AppID:      "chaos-app",
}

const apiv3Key = "chaosAPIv3Key0123456789abcdefXYZ" // 32 bytes, test only

// writeKeys generates the sandbox's and the merchants' keys into dir.
func writeKeys(dir string) (sandboxstack.Files, error) {
	k, err := sandboxstack.LoadOrCreate(sandboxstack.HarnessFiles(dir),
		sandboxstack.Generate{APIv3Key: apiv3Key, PIIKeyID: "chaos"})
	if err != nil {
		return sandboxstack.Files{}, err
	}
	return k.Files, nil
}

// providersConfig writes the provider accounts (WITHDRAW_CONFIG) for the
// sandbox at sandboxURL, its public keys read from GET /_sandbox/keys;
// WeChat callbacks go to notifyURL.
func providersConfig(ctx context.Context, dir string, k sandboxstack.Files, sandboxURL, notifyURL string) (string, error) {
	// 5s: a killed sandbox connection (timeout_after_commit) must not hold
	// a claim long; the dispatcher's lease (15s) must exceed it.
	return sandboxstack.HarnessConfig(ctx, sandboxURL, dir, "providers.yaml", k, sandboxstack.Settings{
		Identity: identity, Timeout: 5 * time.Second, NotifyURL: notifyURL,
	})
}

// buildBinaries builds the product's binaries (without -race, as deployed).
func buildBinaries(ctx context.Context, root, dir string) (map[string]string, error) {
	out := map[string]string{}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, name := range []string{"consumer", "poller", "sandbox"} {
		args = append(args, "./cmd/"+name)
		out[name] = filepath.Join(dir, name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %v: %v\n%s", args, err, b)
	}
	return out, nil
}

// freePort asks the kernel for a port nobody listens on. A process that
// restarts must come back on the same address (the WeChat notify_url names
// the poller's), so the port is fixed up front rather than :0 per start.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
