package providertest_test

import (
	"log/slog"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
)

func clientsNew(cfg *provider.Config) (*provider.Registry, error) {
	return clients.New(cfg, clients.Options{Logger: slog.New(slog.DiscardHandler)})
}
