// Package redact keeps secrets out of error and log messages: passwords
// in URLs, tokens and passwords given as options, header values.
//
// Every backend formats a user's node address with [URL], never with the
// raw text, and wraps errors that may quote a secret (a URL parser's error
// quotes the whole URL, a plugin may quote its options) with [Error].
package redact

import (
	"cmp"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Mask is what stands for a secret in messages, as in url.URL.Redacted.
const Mask = "xxxxx"

// URL returns raw, a URL (scheme://user:password@host/...) or an address
// (user:password@host:port), with the password of its userinfo replaced by
// [Mask], as url.URL.Redacted does. Text that does not parse as a URL
// loses its whole userinfo: everything before the last "@" of the
// authority becomes [Mask]. Text without "@" is returned as it is.
func URL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	if strings.Contains(raw, "://") {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			return u.Redacted()
		}
	}
	start, at := userinfo(raw)
	if at < 0 {
		return raw
	}
	return raw[:start] + Mask + raw[at:]
}

// userinfo returns where the userinfo of raw starts (after "://", if any)
// and the index of the "@" that ends it, the last one of the authority, or
// -1 if there is none.
func userinfo(raw string) (start, at int) {
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at = strings.LastIndex(raw[start:end], "@")
	if at < 0 {
		return start, -1
	}
	return start, start + at
}

// Secrets returns the secret parts of raw, a URL or an address, for
// [Error]: the userinfo's password, or the whole userinfo when raw does not
// parse as a URL. It returns nil when raw has no userinfo.
func Secrets(raw string) []string {
	if !strings.Contains(raw, "@") {
		return nil
	}
	var out []string
	if strings.Contains(raw, "://") {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && p != "" {
				out = append(out, p, url.PathEscape(p), url.QueryEscape(p))
			}
			return out
		}
	}
	// Unparsable: the text between the scheme and the last "@" of the
	// authority, and its password part after the first ":".
	start, at := userinfo(raw)
	if at <= start {
		return nil
	}
	info := raw[start:at]
	out = append(out, info)
	if _, pw, ok := strings.Cut(info, ":"); ok && pw != "" {
		out = append(out, pw)
	}
	return out
}

// Error returns err with every occurrence of each non-empty secret in its
// message replaced by [Mask]; errors.Is and errors.As see err's chain as
// before. It returns err itself when its message holds no secret, and nil
// for nil.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := String(msg, secrets...)
	if clean == msg {
		return err
	}
	return &redacted{msg: clean, err: err}
}

// String returns s with every occurrence of each non-empty secret replaced
// by [Mask], longest secrets first so that a secret holding another is
// masked whole.
func String(s string, secrets ...string) string {
	sorted := make([]string, 0, len(secrets))
	for _, x := range secrets {
		if x != "" {
			sorted = append(sorted, x)
		}
	}
	slices.SortFunc(sorted, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, x := range sorted {
		s = strings.ReplaceAll(s, x, Mask)
	}
	return s
}

// redacted is an error whose message had its secrets masked.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Options returns the secrets among options, free-form name/value pairs
// (a plugin's): the values of options whose name suggests a secret
// (password, token, secret, key, auth, credential), and the userinfo
// secrets of every value (see [Secrets]).
func Options(options map[string]string) []string {
	var out []string
	for name, v := range options {
		n := strings.ToLower(name)
		for _, hint := range []string{"pass", "token", "secret", "key", "auth", "credential"} {
			if strings.Contains(n, hint) {
				out = append(out, v)
				break
			}
		}
		out = append(out, Secrets(v)...)
	}
	return out
}

// Basic returns the secrets of HTTP basic authentication as user and
// password: the password and the header's base64 credentials, which a
// server may echo in an error body.
func Basic(user, password string) []string {
	if password == "" {
		return nil
	}
	return []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
}
