// Command poller follows submitted withdrawals at their providers until
// their outcome is known, receives WeChat Pay's withdraw callbacks, and runs
// the daily stuck report and retention.
//
// Usage:
//
//	poller [flags]
//
// Every flag is also a WITHDRAW_* environment variable; see --help. It
// serves on WITHDRAW_HTTP_ADDR: GET /metrics, GET /healthz, GET /readyz and
// POST /notify/wechatpay/{account} (the notify_url of each WeChat account
// in WITHDRAW_CONFIG must point there). Any number of instances may run.
// See docs/poller.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/paycore/withdraw/internal/app"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/logging"
)

const summary = "query providers for withdrawal outcomes, receive WeChat Pay withdraw callbacks, report stuck withdrawals"

func main() { app.Main("poller", run) }

func run(args []string) error {
	cfg, err := config.Parse("poller", summary, args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log, err := logging.Setup(os.Stderr, cfg.LogLevel, "poller")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Once shutting down, a second signal kills at once.
	context.AfterFunc(ctx, stop)

	poller, err := app.NewPoller(cfg, log)
	if err != nil {
		return err
	}
	defer poller.Close()
	return poller.Run(ctx)
}
