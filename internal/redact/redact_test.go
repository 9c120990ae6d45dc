package redact_test

import (
	"errors"
	"io/fs"
	"net/url"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{name: "no userinfo", in: "http://host:2379", want: "http://host:2379"},
		{name: "password", in: "http://user:S3cr3t@host:2379/p", want: "http://user:xxxxx@host:2379/p"},
		{name: "user only", in: "http://user@host", want: "http://user@host"},
		{name: "unparsable", in: "http://user:S3cr3t@host:port x", want: "http://xxxxx@host:port x"},
		{name: "no scheme", in: "user:S3cr3t@host:8500", want: "xxxxx@host:8500"},
		{name: "at in path", in: "host:80/a@b", want: "host:80/a@b"},
		{name: "at in password", in: "http://u:S3c@r3t@host", want: "http://u:xxxxx@host"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redact.URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	raw := "http://user:S3cr3t@host:abc"
	_, perr := url.Parse(raw) //nolint:staticcheck // the invalid URL is the point
	if perr == nil || !strings.Contains(perr.Error(), "S3cr3t") {
		t.Fatalf("url.Parse(%q) = %v: the test needs an error quoting the password", raw, perr)
	}
	err := redact.Error(perr, redact.Secrets(raw)...)
	if strings.Contains(err.Error(), "S3cr3t") {
		t.Errorf("Error = %q, holds the password", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("Error(%v) lost the *url.Error in its chain", err)
	}
	wrapped := redact.Error(errors.Join(fs.ErrNotExist, errors.New("token tok-123 refused")), "tok-123", "")
	if got := wrapped.Error(); strings.Contains(got, "tok-123") || !errors.Is(wrapped, fs.ErrNotExist) {
		t.Errorf("Error = %q (Is ErrNotExist: %v)", got, errors.Is(wrapped, fs.ErrNotExist))
	}
	if e := errors.New("clean"); redact.Error(e, "x-secret") != e { //nolint:errorlint // identity is the point: no wrapper
		t.Error("an error without secret is not returned as it is")
	}
	if redact.Error(nil, "s") != nil {
		t.Error("Error(nil) is not nil")
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	if got := redact.String("pw=abc abcdef", "abc", "abcdef", ""); got != "pw=xxxxx xxxxx" {
		t.Errorf("String = %q", got)
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"http://u:p%40ss@host", "u:pw@host:1", "http://u:pw@host:port x"} {
		s := redact.Secrets(raw)
		if len(s) == 0 {
			t.Errorf("Secrets(%q) is empty", raw)
		}
	}
	if s := redact.Secrets("http://host"); s != nil {
		t.Errorf("Secrets without userinfo = %q", s)
	}
}
