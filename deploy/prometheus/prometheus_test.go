// Package promconfig_test checks deploy/prometheus and deploy/grafana
// against the code: metric names follow the conventions, the alert rules
// and the dashboard use only metrics that exist, promtool accepts the
// config and rules and passes their unit tests, and a real Prometheus
// scrapes the project's /metrics with this configuration.
package promconfig_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/health"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/poll"
)

// metric is one metric family the code defines.
type metric struct{ name, kind string }

// fieldKinds maps the client_golang types of the Metrics struct fields.
var fieldKinds = map[string]string{
	"Counter": "counter", "CounterVec": "counter", "Gauge": "gauge", "GaugeVec": "gauge",
	"Histogram": "histogram", "HistogramVec": "histogram", "Summary": "summary", "SummaryVec": "summary",
}

// collectorsOf lists the collectors held by a package's Metrics struct
// (unexported fields, read by reflection: the test must see every metric
// even when no series exists yet) with their kinds.
func collectorsOf(t *testing.T, m any) map[prometheus.Collector]string {
	t.Helper()
	out := map[prometheus.Collector]string{}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
		c, ok := f.Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		typ := f.Type()
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		kind, ok := fieldKinds[typ.Name()]
		if !ok {
			t.Fatalf("%T.%s: unknown metric type %s", m, v.Type().Field(i).Name, typ)
		}
		out[c] = kind
	}
	return out
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// projectMetrics registers every metric of the project in one registry (a
// duplicate name would panic) and lists them.
func projectMetrics(t *testing.T) (map[string]metric, *prometheus.Registry, *prometheus.Registry) {
	t.Helper()
	consumer, poller := prometheus.NewRegistry(), prometheus.NewRegistry()
	all := map[prometheus.Collector]string{}
	for c, k := range collectorsOf(t, intake.NewMetrics(consumer)) {
		all[c] = k
	}
	for c, k := range collectorsOf(t, dispatch.NewMetrics(consumer)) {
		all[c] = k
	}
	ob := relay.NewMetrics(consumer)
	for c, k := range collectorsOf(t, ob) {
		all[c] = k
	}
	relay.NewMetrics(poller)
	for c, k := range collectorsOf(t, poll.NewMetrics(poller)) {
		all[c] = k
	}
	for c, k := range collectorsOf(t, health.New(consumer, nil)) {
		all[c] = k
	}
	health.New(poller, nil)
	lag := kafkautil.NewLagCollector([]string{"127.0.0.1:1"}, "withdraw-intake", "withdraw.commands", nil)
	consumer.MustRegister(lag)

	out := map[string]metric{}
	add := func(c prometheus.Collector, kind string) {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			if _, dup := out[m[1]]; dup {
				t.Errorf("metric %s defined twice", m[1])
			}
			out[m[1]] = metric{m[1], kind}
		}
	}
	for c, k := range all {
		add(c, k)
	}
	for name, kind := range map[string]string{
		"withdraw_intake_consumer_lag": "gauge", "withdraw_intake_consumer_group_lag": "gauge",
		"withdraw_intake_consumer_lag_last_success_timestamp_seconds": "gauge", "withdraw_intake_consumer_lag_errors_total": "counter",
	} {
		out[name] = metric{name, kind}
	}
	// The lag collector describes exactly those.
	ch := make(chan *prometheus.Desc, 16)
	go func() { lag.Describe(ch); close(ch) }()
	for d := range ch {
		if n := fqName.FindStringSubmatch(d.String())[1]; out[n].kind == "" {
			t.Errorf("lag collector metric %s not listed", n)
		}
	}
	return out, consumer, poller
}

// TestMetricNames enforces the naming conventions on every metric.
func TestMetricNames(t *testing.T) {
	metrics, _, _ := projectMetrics(t)
	if len(metrics) < 30 {
		t.Fatalf("only %d metrics found", len(metrics))
	}
	timeWord := regexp.MustCompile(`(duration|latency|wait|age|timestamp)`)
	for _, m := range metrics {
		switch {
		case !strings.HasPrefix(m.name, "withdraw_"):
			t.Errorf("%s: not prefixed withdraw_", m.name)
		case m.kind == "counter" && !strings.HasSuffix(m.name, "_total"):
			t.Errorf("%s: a counter must end in _total", m.name)
		case m.kind != "counter" && strings.HasSuffix(m.name, "_total"):
			t.Errorf("%s: only counters end in _total (%s)", m.name, m.kind)
		case timeWord.MatchString(m.name) && !strings.HasSuffix(m.name, "_seconds"):
			t.Errorf("%s: a time must be in seconds (_seconds)", m.name)
		case regexp.MustCompile(`_(ms|us|milliseconds|microseconds|minutes|hours|bytes_kb)(_|$)`).MatchString(m.name):
			t.Errorf("%s: not a base unit", m.name)
		case strings.Contains(m.name, "timestamp") && !strings.HasSuffix(m.name, "_timestamp_seconds"):
			t.Errorf("%s: timestamps end in _timestamp_seconds", m.name)
		case regexp.MustCompile(`_(sum|count|bucket)$`).MatchString(m.name):
			t.Errorf("%s: _sum/_count/_bucket are reserved for histograms' series", m.name)
		}
	}
}

var metricRef = regexp.MustCompile(`\bwithdraw_[a-z0-9_]+`)

// checkRefs fails for every withdraw_ name in text that the code does not
// define (a histogram's _bucket/_sum/_count series count as its own).
func checkRefs(t *testing.T, file, text string, metrics map[string]metric) {
	t.Helper()
	for _, ref := range metricRef.FindAllString(text, -1) {
		name := ref
		if _, ok := metrics[name]; !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base := strings.TrimSuffix(ref, suf); base != ref && metrics[base].kind == "histogram" {
					name = base
				}
			}
		}
		if _, ok := metrics[name]; !ok {
			t.Errorf("%s refers to %s, which no package defines", file, ref)
		}
	}
}

func TestRulesAndDashboardUseRealMetrics(t *testing.T) {
	metrics, _, _ := projectMetrics(t)
	for _, f := range []string{"alerts.yml", "alerts_test.yml", "../grafana/dashboards/withdraw.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkRefs(t, f, string(b), metrics)
	}

	// The dashboard is valid JSON, every panel has a query on the
	// provisioned datasource, and it shows what operators asked for.
	b, err := os.ReadFile("../grafana/dashboards/withdraw.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "withdraw-prometheus" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	joined := strings.Join(exprs, "\n")
	for _, want := range []string{"withdraw_intake_commands_total", "withdraw_intake_batch_size_bucket",
		"withdraw_intake_transaction_duration_seconds_bucket", "withdraw_dispatch_in_flight",
		"histogram_quantile(0.99, sum by (le, channel) (rate(withdraw_provider_request_duration_seconds_bucket",
		"histogram_quantile(0.5, sum by (le, channel) (rate(withdraw_provider_request_duration_seconds_bucket",
		"withdraw_provider_requests_total", "withdraw_outbox_pending_rows", "withdraw_outbox_oldest_pending_age_seconds",
		"withdraw_poll_status_changes_total", "withdraw_stuck_withdrawals", "withdraw_intake_consumer_lag"} {
		if !strings.Contains(joined, want) {
			t.Errorf("dashboard has no panel with %s", want)
		}
	}
	// The provisioning names the datasource uid the panels use and the
	// directory compose mounts the dashboards at.
	ds, _ := os.ReadFile("../grafana/provisioning/datasources/prometheus.yml")
	if !strings.Contains(string(ds), "uid: withdraw-prometheus") {
		t.Error("datasource provisioning does not define uid withdraw-prometheus")
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	pb, _ := os.ReadFile("../grafana/provisioning/dashboards/withdraw.yml")
	if err := yaml.Unmarshal(pb, &prov); err != nil || len(prov.Providers) != 1 || prov.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provisioning: %v %+v", err, prov)
	}
}

var (
	promOnce             sync.Once
	promtool, promServer string
	promMissing          string
)

// needPrometheus finds promtool and prometheus (Debian package
// "prometheus"), installing the package with apt-get when it is missing and
// we are root; the test is skipped, saying why, when that is impossible.
func needPrometheus(t *testing.T) (string, string) {
	t.Helper()
	promOnce.Do(func() {
		find := func() bool {
			a, err1 := exec.LookPath("promtool")
			b, err2 := exec.LookPath("prometheus")
			promtool, promServer = a, b
			return err1 == nil && err2 == nil
		}
		if find() {
			return
		}
		if os.Geteuid() != 0 {
			promMissing = "promtool/prometheus not installed and not root: apt-get install prometheus"
			return
		}
		if _, err := exec.LookPath("apt-get"); err != nil {
			promMissing = "promtool/prometheus not installed and no apt-get"
			return
		}
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "prometheus")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil || !find() {
			promMissing = fmt.Sprintf("apt-get install prometheus failed: %v\n%s", err, tail(out))
		}
	})
	if promMissing != "" {
		t.Skip(promMissing)
	}
	return promtool, promServer
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func TestPromtool(t *testing.T) {
	tool, _ := needPrometheus(t)
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestPrometheusScrapes runs the real Prometheus with deploy/prometheus's
// configuration (targets pointed at two local servers that serve the
// project's real metric registries through the real httpserver) and asks
// its HTTP API whether the targets are up, the project's metrics are
// stored and the alert rules are loaded.
func TestPrometheusScrapes(t *testing.T) {
	_, server := needPrometheus(t)
	_, consumerReg, pollerReg := projectMetrics(t)
	targets := map[string]string{}
	for job, reg := range map[string]*prometheus.Registry{"consumer": consumerReg, "poller": pollerReg} {
		srv := httptest.NewServer(httpserver.New(reg).Mux)
		t.Cleanup(srv.Close)
		targets[job] = strings.TrimPrefix(srv.URL, "http://")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor, api := runPrometheus(ctx, t, server, targets)
	waitFor(`up{job="consumer"} == 1`, 1)
	waitFor(`up{job="poller"} == 1`, 1)
	waitFor(`withdraw_intake_batch_size_count{job="consumer"}`, 1)
	waitFor(`withdraw_outbox_pending_rows{job="poller"}`, 1)
	waitFor(`withdraw_poll_daily_last_success_timestamp_seconds{job="poller"}`, 1)
	waitFor(`withdraw_intake_consumer_lag_errors_total{job="consumer"}`, 1)
	waitFor(`count by (job) ({__name__=~"withdraw_.+"})`, 2)
	checkRulesEvaluate(ctx, t, api)
}

// TestPrometheusScrapesDevstack points the real Prometheus, with the
// repository's configuration and rules, at a running devstack (the whole
// product in one process) and checks through Prometheus's HTTP API that the
// project's metrics are scraped from it.
func TestPrometheusScrapesDevstack(t *testing.T) {
	_, server := needPrometheus(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "devstack")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/paycore/withdraw/cmd/devstack").CombinedOutput(); err != nil {
		t.Fatalf("build devstack: %v\n%s", err, out)
	}
	httpAddr := freeAddr(t)
	dev := exec.Command(bin, "--fresh", "--data-dir", filepath.Join(dir, "data"), "--kafka-addr", freeAddr(t),
		"--sandbox-addr", freeAddr(t), "--http-addr", httpAddr)
	var devLog strings.Builder
	dev.Stdout, dev.Stderr = &devLog, &devLog
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Signal(os.Interrupt)
		_ = dev.Wait()
		if t.Failed() {
			t.Logf("devstack output:\n%s", devLog.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("devstack not ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The devstack serves the consumer's and the poller's metrics on one
	// address: both jobs scrape it.
	waitFor, api := runPrometheus(ctx, t, server, map[string]string{"consumer": httpAddr, "poller": httpAddr})
	waitFor(`up{job="consumer"} == 1`, 1)
	waitFor(`up{job="poller"} == 1`, 1)
	waitFor(`withdraw_intake_batch_size_count{job="consumer"}`, 1)
	waitFor(`withdraw_dispatch_in_flight{job="consumer"}`, 1)
	waitFor(`withdraw_outbox_pending_rows{job="poller"}`, 1)
	checkRulesEvaluate(ctx, t, api)
}

// runPrometheus starts the real Prometheus with the repository's
// prometheus.yml and alerts.yml, its jobs pointed at targets, and returns a
// function waiting for a query to return at least n series, and the API
// base URL.
func runPrometheus(ctx context.Context, t *testing.T, server string, targets map[string]string) (waitFor func(q string, n int), api string) {
	t.Helper()
	// The repository's config, with local targets, a 1s interval and the
	// rules by absolute path.
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"].(map[string]any)["scrape_interval"] = "1s"
	cfg["global"].(map[string]any)["scrape_timeout"] = "1s"
	cfg["global"].(map[string]any)["evaluation_interval"] = "1s"
	rules, _ := filepath.Abs("alerts.yml")
	cfg["rule_files"] = []any{rules}
	jobs := map[string]bool{}
	for _, sc := range cfg["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		job := sc["job_name"].(string)
		jobs[job] = true
		if targets[job] == "" {
			t.Fatalf("prometheus.yml scrapes an unexpected job %q", job)
		}
		sc["static_configs"] = []any{map[string]any{"targets": []any{targets[job]}}}
	}
	if !jobs["consumer"] || !jobs["poller"] {
		t.Fatalf("prometheus.yml jobs = %v, want consumer and poller", jobs)
	}
	dir := t.TempDir()
	out, _ := yaml.Marshal(cfg)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(server, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})

	api = "http://" + addr + "/api/v1/"
	query := func(q string) ([]map[string]any, error) {
		var res struct {
			Status string `json:"status"`
			Data   struct {
				Result []map[string]any `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(ctx, api+"query?query="+url.QueryEscape(q), &res); err != nil {
			return nil, err
		}
		if res.Status != "success" {
			return nil, fmt.Errorf("status %s", res.Status)
		}
		return res.Data.Result, nil
	}
	waitFor = func(q string, n int) {
		t.Helper()
		var last []map[string]any
		var err error
		for ctx.Err() == nil {
			if last, err = query(q); err == nil && len(last) >= n {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("query %s: %v, %v (want %d series)", q, last, err, n)
	}
	return waitFor, api
}

// checkRulesEvaluate waits until every alert rule has been evaluated
// without an error.
func checkRulesEvaluate(ctx context.Context, t *testing.T, api string) {
	t.Helper()
	// The rules are loaded and evaluate without errors.
	var rulesRes struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					Error  string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	for ctx.Err() == nil {
		if err := getJSON(ctx, api+"rules", &rulesRes); err != nil {
			t.Fatal(err)
		}
		ok, n := true, 0
		for _, g := range rulesRes.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" {
					ok = false
					if r.Health == "err" {
						t.Fatalf("rule %s: %s", r.Name, r.Error)
					}
				}
			}
		}
		if ok && n > 10 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("rules not evaluated: %+v", rulesRes)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getJSON(ctx context.Context, u string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, out)
}
