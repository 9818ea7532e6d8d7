package recon

import (
	"context"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/store"
)

// Scheduler runs cron jobs (the poller).
type Scheduler interface {
	AddJob(name, spec string, run func(ctx context.Context) error) error
}

// Register builds the reconciliation of every WeChat account with a recon
// block and adds it to the scheduler on spec (Beijing time). Without such
// an account it logs why nothing is reconciled and adds nothing.
func Register(s Scheduler, db *store.DB, cfg *provider.Config, clients map[string]*wechatpay.Client, spec string,
	log *slog.Logger, reg prometheus.Registerer) error {
	sources, err := WeChatSources(cfg, clients)
	if err != nil {
		return err
	}
	for _, a := range cfg.Accounts {
		if a.Provider == provider.ProtocolAllinpay {
			log.Info("Allinpay account reconciled by query only: no bill API in our documents", "account", a.Name)
		}
	}
	if len(sources) == 0 {
		log.Info("no WeChat account has a recon block: daily reconciliation against fund-flow bills is off")
		return nil
	}
	rec, err := New(db, sources, Options{Logger: log, Metrics: NewMetrics(reg), TempDir: os.TempDir()})
	if err != nil {
		return err
	}
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.Name
	}
	log.Info("daily reconciliation scheduled", "spec", spec+" Asia/Shanghai", "bills", names)
	return s.AddJob("reconciliation", spec, rec.Run)
}
