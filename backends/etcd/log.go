package etcd

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	// The etcd client logs through zap and takes nothing else. These
	// imports only bridge its messages to log/slog; kvconf logs with slog.
	"go.uber.org/zap"         //nolint:depguard // the etcd client's logger type, bridged to slog
	"go.uber.org/zap/zapcore" //nolint:depguard // the etcd client's logger type, bridged to slog
)

// zapLogger returns a zap logger for the etcd client that writes to log, or
// one that discards everything when log is nil.
func zapLogger(log *slog.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{h: log.Handler()})
}

// slogCore is a zapcore.Core that hands entries to a slog.Handler.
type slogCore struct {
	h slog.Handler
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h.WithAttrs(attrs(fields))}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.h.Enabled(context.Background(), entryLevel(e)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, entryLevel(e), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(attrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// entryLevel returns the slog level of a zap entry: its own, or debug for
// the etcd client's message about one failed attempt of a request. kvconf
// reports an outage itself, once ("backend down", with the cause) and
// when it ends; the client's, a warning for every attempt while the
// server is down, would repeat it every few seconds.
func entryLevel(e zapcore.Entry) slog.Level {
	if e.Message == "retrying of unary invoker failed" {
		return slog.LevelDebug
	}
	return slogLevel(e.Level)
}

// slogLevel maps a zap level to the nearest slog level.
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// attrs converts zap fields to slog attributes, sorted by key.
func attrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
