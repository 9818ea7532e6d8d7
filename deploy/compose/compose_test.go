// Package compose_test checks docker-compose.yml, the Dockerfile and
// deploy/compose/withdraw.yaml against the code, since no Docker engine
// runs in CI: the structure, every referenced file, the WITHDRAW_*
// variables, ports and health-check paths, the binaries the Dockerfile
// builds, and that the keys `withdrawctl devkeys` writes make the provider
// accounts of withdraw.yaml load and the sandbox start.
package compose_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/provider/sandbox"
)

const root = "../.."

type service struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

func load(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil { // anchors and merge keys resolved
		t.Fatal(err)
	}
	return c
}

func settingsByEnv() map[string]config.Setting {
	out := map[string]config.Setting{}
	for _, s := range config.Settings() {
		out[s.Env] = s
	}
	return out
}

// dockerfileBinaries returns the ./cmd/… packages the Dockerfile builds and
// its default CMD.
func dockerfileBinaries(t *testing.T) ([]string, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	var bins []string
	for _, m := range regexp.MustCompile(`\./cmd/([a-z0-9_-]+)`).FindAllStringSubmatch(df, -1) {
		bins = append(bins, m[1])
	}
	cmd := regexp.MustCompile(`(?m)^CMD \["([a-z]+)"`).FindStringSubmatch(df)
	if len(bins) == 0 || cmd == nil {
		t.Fatalf("Dockerfile: no go build of ./cmd/… or no CMD")
	}
	// Every COPY source of the build context exists.
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--[a-z]+=\S+ )*(\S+(?: \S+)*) \S+$`).FindAllStringSubmatch(df, -1) {
		if strings.Contains(m[0], "--from=") {
			continue
		}
		for _, src := range strings.Fields(m[1]) {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("Dockerfile copies %s: %v", src, err)
			}
		}
	}
	return bins, cmd[1]
}

func TestDockerfile(t *testing.T) {
	bins, cmd := dockerfileBinaries(t)
	for _, bin := range bins {
		// A main package that builds.
		out, err := exec.Command("go", "list", "-f", "{{.Name}}", "github.com/paycore/withdraw/cmd/"+bin).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "main" {
			t.Errorf("Dockerfile builds ./cmd/%s: %v %s", bin, err, out)
		}
	}
	for _, need := range []string{"consumer", "poller", "sandbox", "withdrawctl"} {
		if !slices.Contains(bins, need) {
			t.Errorf("Dockerfile does not build %s", need)
		}
	}
	if !slices.Contains(bins, cmd) {
		t.Errorf("Dockerfile CMD %s is not built", cmd)
	}
	b, _ := os.ReadFile(filepath.Join(root, "Dockerfile"))
	for _, want := range []string{"AS build", "USER 65532", "CGO_ENABLED=0", "withdrawctl\", \"health\""} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	di, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil || !strings.Contains(string(di), ".localenv") || !strings.Contains(string(di), ".git") {
		t.Errorf(".dockerignore: %v", err)
	}
}

func TestCompose(t *testing.T) {
	c := load(t)
	bins, _ := dockerfileBinaries(t)
	envs := settingsByEnv()
	for _, name := range []string{"kafka", "mysql", "keys", "migrate", "sandbox", "consumer", "poller", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}

	kafka := c.Services["kafka"]
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %s, want the official apache/kafka", kafka.Image)
	}
	if kafka.Environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] != "false" || !strings.Contains(kafka.Environment["KAFKA_PROCESS_ROLES"], "controller") {
		t.Errorf("kafka must be KRaft with auto-create off: %v", kafka.Environment)
	}
	if img := c.Services["mysql"].Image; img != "mysql:8.4" {
		t.Errorf("mysql image %s, want mysql:8.4", img)
	}

	for name, s := range c.Services {
		// Services of our image: built from the Dockerfile, running a
		// binary it builds.
		if s.Build != nil {
			if s.Build.Dockerfile != "Dockerfile" || s.Build.Context != "." {
				t.Errorf("%s: build %+v", name, s.Build)
			}
			if len(s.Command) == 0 || !slices.Contains(bins, s.Command[0]) {
				t.Errorf("%s: command %v is not a binary of the image (%v)", name, s.Command, bins)
			}
		}
		// WITHDRAW_* variables are settings the binaries parse.
		for k := range s.Environment {
			if strings.HasPrefix(k, "WITHDRAW_") {
				if _, ok := envs[k]; !ok {
					t.Errorf("%s: %s is not a setting of internal/config", name, k)
				}
			}
		}
		// Bind mounts exist; named volumes are declared.
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: volume %s not declared", name, src)
			}
		}
		if s.Healthcheck == nil {
			t.Errorf("%s: no healthcheck", name)
		}
	}

	// The services listen where their health checks, port mappings and
	// Prometheus look.
	prom, _ := os.ReadFile(filepath.Join(root, "deploy/prometheus/prometheus.yml"))
	for _, name := range []string{"consumer", "poller"} {
		s := c.Services[name]
		addr := s.Environment["WITHDRAW_HTTP_ADDR"]
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s: WITHDRAW_HTTP_ADDR %q: %v", name, addr, err)
		}
		if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":"+port) {
			t.Errorf("%s: ports %v do not publish %s", name, s.Ports, port)
		}
		hc := strings.Join(s.Healthcheck.Test, " ")
		if !strings.Contains(hc, "withdrawctl health http://127.0.0.1:"+port+"/readyz") {
			t.Errorf("%s: healthcheck %q", name, hc)
		}
		if !strings.Contains(string(prom), `"`+name+":"+port+`"`) {
			t.Errorf("prometheus.yml does not scrape %s:%s", name, port)
		}
		for _, k := range []string{"WITHDRAW_MYSQL_DSN", "WITHDRAW_KAFKA_BROKERS", "WITHDRAW_CONFIG", "WITHDRAW_PII_KEYS_FILE", "WITHDRAW_ADMIN_TOKEN_FILE"} {
			if s.Environment[k] == "" {
				t.Errorf("%s: %s not set", name, k)
			}
		}
		if !strings.HasPrefix(s.Environment["WITHDRAW_KAFKA_BROKERS"], "kafka:9092") || !strings.Contains(s.Environment["WITHDRAW_MYSQL_DSN"], "@tcp(mysql:3306)/") {
			t.Errorf("%s: brokers/DSN do not point at the compose services", name)
		}
	}
	// The health path is one the operational server serves.
	srv := httptest.NewServer(httpserver.New(prometheus.NewRegistry()).Mux)
	defer srv.Close()
	for _, p := range []string{"/readyz", "/healthz", "/metrics"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %v %v", p, err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}

	// Prometheus and Grafana mount what the repository holds where their
	// configuration expects it.
	vols := strings.Join(c.Services["prometheus"].Volumes, " ")
	for _, want := range []string{"./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml", "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml"} {
		if !strings.Contains(vols, want) {
			t.Errorf("prometheus does not mount %s", want)
		}
	}
	vols = strings.Join(c.Services["grafana"].Volumes, " ")
	for _, want := range []string{"./deploy/grafana/provisioning:/etc/grafana/provisioning", "./deploy/grafana/dashboards:/var/lib/grafana/dashboards"} {
		if !strings.Contains(vols, want) {
			t.Errorf("grafana does not mount %s", want)
		}
	}
}

// TestKeysAndProviders runs `withdrawctl devkeys` as the compose "keys"
// service does, then checks that withdraw.yaml's accounts load with those
// files, that the sandbox's command line names files devkeys wrote, and
// that the sandbox loads its keys.
func TestKeysAndProviders(t *testing.T) {
	c := load(t)
	dir := t.TempDir()
	out, err := exec.Command("go", "run", "../../cmd/withdrawctl", "devkeys", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("devkeys: %v\n%s", err, out)
	}
	// Idempotent: a second run keeps the keys.
	before, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	if out, err := exec.Command("go", "run", "../../cmd/withdrawctl", "devkeys", "--dir", dir).CombinedOutput(); err != nil || !strings.Contains(string(out), "kept") {
		t.Fatalf("devkeys again: %v %s", err, out)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	if string(before) != string(after) {
		t.Error("a second devkeys run replaced the admin token")
	}
	local := func(p string) string { return strings.Replace(p, "/keys", dir, 1) }

	b, err := os.ReadFile("withdraw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.ParseConfig([]byte(strings.ReplaceAll(string(b), "/keys/", dir+"/")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clients.New(cfg, clients.Options{}); err != nil {
		t.Fatalf("clients from withdraw.yaml with devkeys' files: %v", err)
	}
	chans := map[string]bool{}
	for _, a := range cfg.Accounts {
		u, err := url.Parse(a.BaseURL)
		if err != nil || u.Hostname() != "sandbox" {
			t.Errorf("account %s/%s: base_url %s does not point at the sandbox service", a.Provider, a.Name, a.BaseURL)
		}
		if u != nil && u.Port() != "8090" {
			t.Errorf("account %s: sandbox port %s", a.Provider, u.Port())
		}
		for _, ch := range a.Channels {
			chans[string(ch)] = true
		}
	}
	for _, ch := range []string{"wechatpay_ecommerce", "wechatpay_platform", "wechatpay_cancel", "allinpay_shopoint"} {
		if !chans[ch] {
			t.Errorf("withdraw.yaml serves no account for %s", ch)
		}
	}

	// The services' config file mount and the sandbox's key arguments.
	for _, name := range []string{"consumer", "poller"} {
		if !slices.Contains(c.Services[name].Volumes, "./deploy/compose/withdraw.yaml:"+c.Services[name].Environment["WITHDRAW_CONFIG"]+":ro") {
			t.Errorf("%s does not mount withdraw.yaml at WITHDRAW_CONFIG", name)
		}
		for _, k := range []string{"WITHDRAW_PII_KEYS_FILE", "WITHDRAW_ADMIN_TOKEN_FILE"} {
			if _, err := os.Stat(local(c.Services[name].Environment[k])); err != nil {
				t.Errorf("%s: %s: %v", name, k, err)
			}
		}
	}
	sb := c.Services["sandbox"]
	var keysDir string
	for _, arg := range sb.Command[1:] {
		flagName, val, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		switch flagName {
		case "keys-dir":
			keysDir = local(val)
		case "merchant", "allinpay-app":
			for _, part := range strings.Split(val, ":") {
				if strings.HasPrefix(part, "/keys/") {
					if _, err := os.Stat(local(part)); err != nil {
						t.Errorf("sandbox --%s: %v", flagName, err)
					}
				}
			}
		}
	}
	if !strings.Contains(strings.Join(sb.Command, " "), "--merchant=1900000109:5157F09EFDC096DE15EBE81A47057A7232F1B8E1:") {
		t.Error("sandbox --merchant does not match withdraw.yaml's mchid and cert_serial")
	}
	if _, err := sandbox.LoadKeys(keysDir); err != nil {
		t.Errorf("sandbox --keys-dir: %v", err)
	}
}
