package funcs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
)

func init() {
	Register("confd", "confd's template functions (get, getv, ls, lookupSRV, ...), with confd's names and semantics", confdFuncs)
	RegisterGetAll("confd", "gets")
}

// resolverKey is the context key of the resolver set by [WithResolver].
type resolverKey struct{}

// WithResolver returns a copy of ctx that carries r. When the confd set is
// built with such a context (as [Map] and template rendering do with the
// context they are given), lookupIP, lookupIPV4, lookupIPV6 and lookupSRV
// resolve names with r and with that context, so a cancelled render stops
// its look-ups. Without it, or with a nil r, they use [net.DefaultResolver].
func WithResolver(ctx context.Context, r *net.Resolver) context.Context {
	return context.WithValue(ctx, resolverKey{}, r)
}

// resolverFrom returns the resolver carried by ctx, or [net.DefaultResolver].
func resolverFrom(ctx context.Context) *net.Resolver {
	if r, ok := ctx.Value(resolverKey{}).(*net.Resolver); ok && r != nil {
		return r
	}
	return net.DefaultResolver
}

// errDivByZero is returned by div and mod for a zero divisor. confd lets the
// runtime panic, which text/template turns into an error for the call; this
// is the same failure without the panic.
var errDivByZero = errors.New("integer divide by zero")

// confdFuncs is the [Builder] of the "confd" set: the functions of confd's
// resource/template/template_funcs.go plus memkv's store functions, under
// the same names and with the same arguments and results.
//
// Deliberate differences from confd: errors never quote a key's value
// (atoi, parseBool and json report what is wrong, not the input), div and
// mod by zero return an error instead of panicking, and sortByLength and
// sortKVByLength are stable.
func confdFuncs(ctx context.Context, s *Store) texttemplate.FuncMap {
	if s == nil {
		s = NewStore(nil)
	}
	res := resolverFrom(ctx)
	return texttemplate.FuncMap{
		// Store functions (memkv's FuncMap).
		"get": func(key string) (KV, error) {
			v, err := s.Get(key)
			if err != nil {
				return KV{}, err // *KeyError: names the key, never the value
			}
			return KV{Key: cleanKey(key), Value: v}, nil
		},
		"gets":   s.GetAll, // declared with RegisterGetAll in init
		"getv":   getv(s),
		"getvs":  s.GetAllValues,
		"exists": s.Exists,
		"ls":     s.List,
		"lsdir":  s.ListDir,

		// Paths and strings.
		"base":       path.Base,
		"dir":        path.Dir,
		"split":      strings.Split,
		"join":       strings.Join,
		"toUpper":    strings.ToUpper,
		"toLower":    strings.ToLower,
		"contains":   strings.Contains,
		"replace":    strings.Replace,
		"trimSuffix": strings.TrimSuffix,

		// Data.
		"json":           jsonObject,
		"jsonArray":      jsonArray,
		"map":            createMap,
		"base64Encode":   base64Encode,
		"base64Decode":   base64Decode,
		"parseBool":      parseBool,
		"atoi":           atoi,
		"reverse":        reverse,
		"sortByLength":   sortByLength,
		"sortKVByLength": sortKVByLength,
		"seq":            seq,

		// Arithmetic on ints, as confd.
		"add": func(a, b int) int { return a + b },
		"sub": func(a, b int) int { return a - b },
		"mul": func(a, b int) int { return a * b },
		"div": func(a, b int) (int, error) {
			if b == 0 {
				return 0, errDivByZero
			}
			return a / b, nil
		},
		"mod": func(a, b int) (int, error) {
			if b == 0 {
				return 0, errDivByZero
			}
			return a % b, nil
		},

		// Environment.
		"getenv":     getenv,
		"datetime":   time.Now,
		"fileExists": fileExists,

		// Network.
		"lookupIP": func(name string) []string {
			return lookupIP(ctx, res, name)
		},
		"lookupIPV4": func(name string) []string {
			return filterIPs(lookupIP(ctx, res, name), ".")
		},
		"lookupIPV6": func(name string) []string {
			return filterIPs(lookupIP(ctx, res, name), ":")
		},
		"lookupSRV": func(service, proto, name string) []*net.SRV {
			return lookupSRV(ctx, res, service, proto, name)
		},
	}
}

// getv returns confd's getv bound to s: the value of key; if key is missing,
// the first default when one is given (even an empty one), else the
// store's [*KeyError].
func getv(s *Store) func(key string, defaults ...string) (string, error) {
	return func(key string, defaults ...string) (string, error) {
		v, err := s.Get(key)
		if err != nil {
			if len(defaults) > 0 {
				return defaults[0], nil
			}
			return "", err
		}
		return v, nil
	}
}

// getenv returns the environment variable key, or the first default (or "")
// when it is unset or empty.
func getenv(key string, defaults ...string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	if len(defaults) > 0 {
		return defaults[0]
	}
	return ""
}

// fileExists reports whether name can be stat'ed; as in confd, only a
// "does not exist" error counts as absent.
func fileExists(name string) bool {
	_, err := os.Stat(name)
	return !errors.Is(err, fs.ErrNotExist)
}

// jsonObject decodes data as a JSON object.
func jsonObject(data string) (map[string]any, error) {
	var out map[string]any
	if err := json.Unmarshal([]byte(data), &out); err != nil {
		return nil, jsonError(err)
	}
	return out, nil
}

// jsonArray decodes data as a JSON array.
func jsonArray(data string) ([]any, error) {
	var out []any
	if err := json.Unmarshal([]byte(data), &out); err != nil {
		return nil, jsonError(err)
	}
	return out, nil
}

// jsonError drops the offending character that a [*json.SyntaxError]
// quotes, since the input is usually a key's value.
func jsonError(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("json: invalid syntax at byte offset %d", se.Offset)
	}
	return err
}

// createMap builds a map from alternating string keys and values.
func createMap(kvs ...any) (map[string]any, error) {
	if len(kvs)%2 != 0 {
		return nil, errors.New("invalid map call: odd number of arguments")
	}
	m := make(map[string]any, len(kvs)/2)
	for i := 0; i < len(kvs); i += 2 {
		k, ok := kvs[i].(string)
		if !ok {
			return nil, fmt.Errorf("map keys must be strings, argument %d is %T", i+1, kvs[i])
		}
		m[k] = kvs[i+1]
	}
	return m, nil
}

// base64Encode returns the standard base64 encoding of data.
func base64Encode(data string) string {
	return base64.StdEncoding.EncodeToString([]byte(data))
}

// base64Decode decodes standard base64.
func base64Decode(data string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return "", fmt.Errorf("base64: %w", err) // CorruptInputError gives an offset only
	}
	return string(b), nil
}

// parseBool is [strconv.ParseBool] with an error that does not quote str.
func parseBool(str string) (bool, error) {
	b, err := strconv.ParseBool(str)
	if err != nil {
		return false, numError("strconv.ParseBool", err)
	}
	return b, nil
}

// atoi is [strconv.Atoi] with an error that does not quote s.
func atoi(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, numError("strconv.Atoi", err)
	}
	return n, nil
}

// numError keeps the reason of a [*strconv.NumError] (so errors.Is works
// with [strconv.ErrSyntax] and [strconv.ErrRange]) but not its input.
func numError(fn string, err error) error {
	if ne, ok := errors.AsType[*strconv.NumError](err); ok {
		return fmt.Errorf("%s: %w", fn, ne.Err)
	}
	return fmt.Errorf("%s: %w", fn, err)
}

// reverse reverses a []string or a []KV in place and returns it; any other
// value is returned unchanged, as in confd.
func reverse(values any) any {
	switch v := values.(type) {
	case []string:
		slices.Reverse(v)
	case []KV:
		slices.Reverse(v)
	}
	return values
}

// sortByLength sorts values in place by length, shortest first.
func sortByLength(values []string) []string {
	sort.SliceStable(values, func(i, j int) bool { return len(values[i]) < len(values[j]) })
	return values
}

// sortKVByLength sorts values in place by key length, shortest first.
func sortKVByLength(values []KV) []KV {
	sort.SliceStable(values, func(i, j int) bool { return len(values[i].Key) < len(values[j].Key) })
	return values
}

// seq returns the integers from first to last inclusive, or nil when first
// is greater than last (GNU seq).
func seq(first, last int) []int {
	var out []int
	for i := first; i <= last; i++ {
		out = append(out, i)
		if i == last { // do not overflow when last is the largest int
			break
		}
	}
	return out
}

// lookupIP returns the addresses of name, as sorted strings, or nil when
// the look-up fails (confd ignores the error).
func lookupIP(ctx context.Context, r *net.Resolver, name string) []string {
	ips, err := r.LookupIP(ctx, "ip", name)
	if err != nil {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	sort.Strings(out)
	return out
}

// filterIPs keeps the addresses that contain sep: "." for IPv4, ":" for
// IPv6, which is how confd tells them apart.
func filterIPs(ips []string, sep string) []string {
	var out []string
	for _, ip := range ips {
		if strings.Contains(ip, sep) {
			out = append(out, ip)
		}
	}
	return out
}

// lookupSRV returns the SRV records of _service._proto.name, or an empty
// slice when the look-up fails. Records are sorted as confd sorts them: by
// the string of target, port, priority and weight written one after the
// other, which makes the output stable across look-ups.
func lookupSRV(ctx context.Context, r *net.Resolver, service, proto, name string) []*net.SRV {
	_, addrs, err := r.LookupSRV(ctx, service, proto, name)
	if err != nil {
		return []*net.SRV{}
	}
	sortKey := func(s *net.SRV) string {
		return fmt.Sprintf("%s%d%d%d", s.Target, s.Port, s.Priority, s.Weight)
	}
	sort.SliceStable(addrs, func(i, j int) bool { return sortKey(addrs[i]) < sortKey(addrs[j]) })
	return addrs
}
