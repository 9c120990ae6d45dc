// Package httpapi is kvconf's operations listener: /metrics in the
// Prometheus text format, /health and /ready for probes.
//
//   - /metrics: the registry of [metrics.Metrics].
//   - /health: 200 while the loops that keep the resources up to date
//     run, else 503.
//   - /ready: 200 once every resource was brought up to date at least once
//     and every backend answered, else 503; the JSON body names what is
//     not ready.
//
// /health and /ready add every resource ({file, dest, last_success,
// last_error, ...}) and backend to their JSON body with ?verbose.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvconf/kvconf/internal/metrics"
)

// Handler serves /metrics, /health and /ready from m.
func Handler(m *metrics.Metrics, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{
		ErrorLog: slogErrorLogger{log}, ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		rep := m.Status().Report(r.URL.Query().Has("verbose"))
		rep.NotReady = nil // /health is about the loops, not readiness
		writeJSON(w, rep.Running, rep, log)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		rep := m.Status().Report(r.URL.Query().Has("verbose"))
		writeJSON(w, rep.Ready && rep.Running, rep, log)
	})
	return mux
}

// writeJSON writes v with 200 when ok, else 503.
func writeJSON(w http.ResponseWriter, ok bool, v any, log *slog.Logger) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if ok {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		log.Debug("http response failed", "err", err)
	}
}

// slogErrorLogger is promhttp's error log, on slog.
type slogErrorLogger struct{ log *slog.Logger }

func (l slogErrorLogger) Println(v ...any) {
	l.log.Warn("metrics collection failed", "err", fmt.Sprint(v...))
}

// shutdownTimeout bounds how long Serve waits for requests under way once
// ctx is done.
const shutdownTimeout = 5 * time.Second

// Listen opens the listener of addr (host:port; port 0 picks one).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is done, then shuts down gracefully and
// returns nil; an error of the server ends it earlier.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
	})
	err := srv.Serve(ln)
	if stop() {
		// ctx is not done: Serve failed on its own.
		return fmt.Errorf("http: %w", err)
	}
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("http: %w", err)
}
