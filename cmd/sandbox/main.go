// Command sandbox runs the provider sandbox: one HTTP server that behaves
// like WeChat Pay API v3 (the three withdraw channels) and the Allinpay
// shopoint gateway, for development, tests and benchmarks.
//
//	go run ./cmd/sandbox --help
//
// Every flag can also be set by an environment variable WITHDRAW_SANDBOX_<FLAG>
// (upper case, '-' → '_'); repeatable flags take ';'-separated values there.
package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ";") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

const envPrefix = "WITHDRAW_SANDBOX_"

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	var (
		addr         = fs.String("addr", "127.0.0.1:8090", "listen address (the admin API under /_sandbox/ has no auth: keep it local)")
		seed         = fs.Uint64("seed", 1, "seed of lifecycle choices and fault injection")
		keysDir      = fs.String("keys-dir", "", "load provider keys from this directory (else generate them at start)")
		writeKeys    = fs.String("write-keys", "", "write the (generated) provider keys to this directory")
		signMode     = fs.String("sign-mode", sandbox.SignPublicKey, "how answers are signed: public_key or certificate")
		finalDelay   = fs.Duration("final-delay", 5*time.Second, "CREATE_SUCCESS → final status")
		refundDelay  = fs.Duration("refund-delay", time.Minute, "SUCCESS → REFUND for refunded orders")
		pFail        = fs.Float64("p-fail", 0, "probability of FAIL")
		pClose       = fs.Float64("p-close", 0, "probability of CLOSE")
		pRefund      = fs.Float64("p-refund", 0, "probability of REFUND after SUCCESS")
		pInit        = fs.Float64("p-init", 0, "probability of INIT (driven on by an identical resubmission)")
		visibleAfter = fs.Duration("visible-after", 0, "queries answer ORDER_NOT_EXISTS until this long after creation")
		nextMorning  = fs.Bool("visible-next-morning", false, "queries see orders only from 08:00 Beijing the next day (WeChat's rule)")
		balance      = fs.Int64("default-balance", 1_000_000_000_000, "every WeChat balance, in fen")
		queryMethod  = fs.String("allinpay-query-method", "", "gateway method answered as the Allinpay status query")
		logLevel     = fs.String("log-level", "info", "debug, info, warn or error")
		merchants    multi
		apps         multi
		faultFlags   multi
	)
	fs.Var(&merchants, "merchant", "a WeChat merchant `mchid:serial:public_key.pem[:apiv3_key_file]` (repeatable)")
	fs.Var(&apps, "allinpay-app", "an Allinpay app `app_id:public_key.pem` (repeatable)")
	fs.Var(&faultFlags, "fault", "a fault `endpoint:key=value,…` (repeatable); endpoints: * "+strings.Join(sandbox.Endpoints, " ")+
		"; keys: latency=50ms 429=0.1 5xx=0.1 timeout_after_commit=0.1 bad_signature=0.1 <ERROR_CODE>=0.1")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sandbox [flags]\n\nA WeChat Pay v3 + Allinpay provider sandbox. Every flag may also be set as %s<FLAG>.\n"+
			"Admin API: GET /_sandbox/keys, GET /_sandbox/ledger, POST /_sandbox/merchants, GET|POST|DELETE /_sandbox/faults, POST /_sandbox/balances.\n\n", envPrefix)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	opts := sandbox.Options{
		Seed: *seed, SignMode: *signMode, DefaultBalance: *balance, AllinpayQueryMethod: *queryMethod, Logger: log,
		Lifecycle: sandbox.Lifecycle{FinalDelay: *finalDelay, RefundDelay: *refundDelay, PFail: *pFail, PClose: *pClose,
			PRefund: *pRefund, PInit: *pInit, VisibleAfter: *visibleAfter, VisibleNextMorning: *nextMorning},
		Faults: map[string]sandbox.Fault{},
	}
	var err error
	if *keysDir != "" {
		if opts.Keys, err = sandbox.LoadKeys(*keysDir); err != nil {
			return err
		}
	} else if opts.Keys, err = sandbox.GenerateKeys(); err != nil {
		return err
	}
	if *writeKeys != "" {
		if err := os.MkdirAll(*writeKeys, 0o700); err != nil {
			return err
		}
		if err := opts.Keys.WriteKeys(*writeKeys); err != nil {
			return err
		}
	}
	for _, m := range merchants {
		wm, err := parseMerchant(m)
		if err != nil {
			return err
		}
		opts.WeChatMerchants = append(opts.WeChatMerchants, wm)
	}
	for _, a := range apps {
		id, file, ok := strings.Cut(a, ":")
		if !ok {
			return fmt.Errorf("--allinpay-app %q: want app_id:public_key.pem", a)
		}
		pub, err := readPublicKey(file)
		if err != nil {
			return err
		}
		opts.AllinpayApps = append(opts.AllinpayApps, sandbox.AllinpayApp{AppID: id, PublicKey: pub})
	}
	for _, f := range faultFlags {
		e, v, err := sandbox.ParseFaultFlag(f)
		if err != nil {
			return err
		}
		opts.Faults[e] = v
	}

	srv, err := sandbox.New(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	pk := srv.PublicKeys()
	log.Info("sandbox listening", "addr", ln.Addr().String(), "sign_mode", pk.SignMode,
		"platform_cert_serial", pk.PlatformCertSerial, "public_key_id", pk.PublicKeyID,
		"wechat_merchants", len(opts.WeChatMerchants), "allinpay_apps", len(opts.AllinpayApps))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shut)
}

// applyEnv sets every flag not given on the command line from its
// environment variable.
func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		v, ok := os.LookupEnv(envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")))
		if !ok {
			return
		}
		vals := []string{v}
		if _, repeatable := f.Value.(*multi); repeatable {
			vals = strings.Split(v, ";")
		}
		for _, x := range vals {
			if e := f.Value.Set(x); e != nil {
				err = fmt.Errorf("%s%s: %w", envPrefix, strings.ToUpper(f.Name), e)
				return
			}
		}
	})
	return err
}

func parseMerchant(s string) (sandbox.WeChatMerchant, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 || len(parts) > 4 {
		return sandbox.WeChatMerchant{}, fmt.Errorf("--merchant %q: want mchid:serial:public_key.pem[:apiv3_key_file]", s)
	}
	pub, err := readPublicKey(parts[2])
	if err != nil {
		return sandbox.WeChatMerchant{}, err
	}
	m := sandbox.WeChatMerchant{MchID: parts[0], Serial: parts[1], PublicKey: pub}
	if len(parts) == 4 {
		b, err := os.ReadFile(parts[3])
		if err != nil {
			return m, fmt.Errorf("--merchant %s: %w", parts[0], err)
		}
		m.APIv3Key = []byte(strings.TrimSpace(string(b)))
	}
	return m, nil
}

func readPublicKey(file string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	k, err := wechatpay.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}
