// Package httpserver serves what every binary exposes: /metrics, /healthz
// (the process is alive) and /readyz (its dependencies answer), plus any
// routes the binary adds.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable; nil means ready.
type Check func(ctx context.Context) error

// Server is the operational HTTP server of a binary.
type Server struct {
	Mux *http.ServeMux

	mu     sync.Mutex
	checks map[string]Check
	srv    *http.Server
	ln     net.Listener
}

// New builds a server whose /metrics serves reg.
func New(reg *prometheus.Registry) *Server {
	s := &Server{Mux: http.NewServeMux(), checks: map[string]Check{}}
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.Mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

// AddCheck registers a readiness check under a name shown by /readyz.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	s.checks[name] = c
	s.mu.Unlock()
}

// readyz runs every check (2s each, in parallel) and answers 200 when all
// pass, 503 otherwise, with each check's result.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	results := make([]string, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := checks[n](ctx); err != nil {
				results[i] = err.Error()
			} else {
				results[i] = "ok"
			}
		}()
	}
	wg.Wait()
	status := http.StatusOK
	body := make(map[string]string, len(names))
	for i, n := range names {
		body[n] = results[i]
		if results[i] != "ok" {
			status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, body)
}

// Start listens on addr and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http server stopped", "addr", addr, "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Deferred serves routes that need a dependency the process may still be
// connecting to at start (the admin API and the callbacks need MySQL):
// until Set gives it the real handler it answers 503 with Reason, so that
// /healthz and /readyz are served from the first moment on.
type Deferred struct {
	Reason string
	h      atomic.Pointer[http.Handler]
}

// Set makes d serve h from now on.
func (d *Deferred) Set(h http.Handler) { d.h.Store(&h) }

// ServeHTTP implements http.Handler.
func (d *Deferred) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := d.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "not ready: " + d.Reason})
}
