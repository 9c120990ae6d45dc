package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
)

// loggingConfig is a backend config that logs through the logger the
// pool hands it.
type loggingConfig struct{ log *slog.Logger }

func (c *loggingConfig) SetLogger(l *slog.Logger) { c.log = l }

func (c *loggingConfig) Open(context.Context) (backends.Backend, error) {
	c.log.Info("dialing")
	return backendtest.NewFake(), nil
}

// TestPoolSetsLogger checks that a backend config that logs gets the
// run's logger, with the backend named, before it is opened.
func TestPoolSetsLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	p := newPool("mine", &loggingConfig{}, []namedBackend{{name: "meta", typ: "mine", cfg: &loggingConfig{}}}, log)
	defer p.close()
	for _, name := range []string{"", "meta"} {
		if _, err := p.get(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{`msg=dialing backend=mine`, `msg=dialing backend="meta (mine)"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
