package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap" //nolint:depguard // etcd's server and client take zap loggers; the tests silence them

	"github.com/kvconf/kvconf/backends/etcd"
)

// etcdMember is an etcd server embedded in the test process, on loopback
// ports of its own and a data directory that outlives a restart.
type etcdMember struct {
	name      string
	dir       string
	clientURL url.URL
	peerURL   url.URL
	tls       *tlsFiles // nil for plain http
	cluster   string    // initial cluster, name=peerURL,...
	e         *embed.Etcd
}

// freePort returns a loopback port that nothing listened on a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := l.Addr().(*net.TCPAddr).AddrPort().String()
		if err := l.Close(); err != nil {
			tb.Fatal(err)
		}
		// A port just closed may be handed out again: never give the
		// same one twice, for servers that take several.
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// handedOut holds the addresses freePort returned.
var handedOut sync.Map

// newMember prepares a member; start starts it.
func newMember(tb testing.TB, name string, tf *tlsFiles) *etcdMember {
	tb.Helper()
	scheme := "http"
	if tf != nil {
		scheme = "https"
	}
	m := &etcdMember{
		name:      name,
		dir:       filepath.Join(tb.TempDir(), name),
		clientURL: url.URL{Scheme: scheme, Host: freePort(tb)},
		peerURL:   url.URL{Scheme: "http", Host: freePort(tb)},
		tls:       tf,
	}
	m.cluster = m.name + "=" + m.peerURL.String()
	return m
}

// startEtcd starts a one-member cluster (TLS on its client port if tf is
// not nil) and stops it when the test ends.
func startEtcd(tb testing.TB, tf *tlsFiles) *etcdMember {
	tb.Helper()
	m := newMember(tb, "m0", tf)
	m.start(tb)
	tb.Cleanup(m.stop)
	m.waitReady(tb)
	return m
}

// startCluster starts a cluster of n members and stops them when the test
// ends.
func startCluster(tb testing.TB, n int) []*etcdMember {
	tb.Helper()
	ms := make([]*etcdMember, n)
	var parts []string
	for i := range ms {
		ms[i] = newMember(tb, fmt.Sprintf("m%d", i), nil)
		parts = append(parts, ms[i].cluster)
	}
	for _, m := range ms {
		m.cluster = strings.Join(parts, ",")
		m.start(tb)
		tb.Cleanup(m.stop)
	}
	for _, m := range ms {
		m.waitReady(tb)
	}
	return ms
}

// start starts the member on its data directory: a new cluster the first
// time, the same one after a stop.
func (m *etcdMember) start(tb testing.TB) {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.InitialCluster = m.cluster
	cfg.InitialClusterToken = "kvconf-test"
	cfg.UnsafeNoFsync = true // test data only
	cfg.MaxTxnOps = 1000     // for loading benchmark data quickly
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if m.tls != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       m.tls.serverCert,
			KeyFile:        m.tls.serverKey,
			TrustedCAFile:  m.tls.ca,
			ClientCertAuth: true,
		}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("start etcd %s: %v", m.name, err)
	}
	m.e = e
}

// waitReady waits until the member serves requests.
func (m *etcdMember) waitReady(tb testing.TB) {
	tb.Helper()
	select {
	case <-m.e.Server.ReadyNotify():
	case err := <-m.e.Err():
		tb.Fatalf("etcd %s: %v", m.name, err)
	case <-time.After(60 * time.Second):
		tb.Fatalf("etcd %s not ready after 60s", m.name)
	}
}

// stop stops the member; it can be started again. Stopping a stopped
// member does nothing.
func (m *etcdMember) stop() {
	if m.e != nil {
		m.e.Close()
		m.e = nil
	}
}

// urls returns the client URLs of members.
func urls(ms ...*etcdMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.clientURL.String()
	}
	return out
}

// rawClient returns a plain etcd client for the test's own reads and
// writes, closed when the test ends.
func rawClient(tb testing.TB, cfg clientv3.Config) *clientv3.Client {
	tb.Helper()
	cfg.Logger = zap.NewNop()
	cfg.DialTimeout = 10 * time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	tb.Cleanup(func() { _ = cli.Close() }) // its error is the closing context's
	return cli
}

// openEtcd opens the backend under test and closes it when the test ends.
func openEtcd(tb testing.TB, cfg etcd.Config) *etcd.Client {
	tb.Helper()
	c, err := etcd.New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("etcd.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return c
}

// reqCtx returns a context for one request of the test.
func reqCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// put sets key to value and returns the revision of the change.
func put(tb testing.TB, cli *clientv3.Client, key, value string) uint64 {
	tb.Helper()
	resp, err := cli.Put(reqCtx(tb), key, value)
	if err != nil {
		tb.Fatalf("put %s: %v", key, err)
	}
	return uint64(resp.Header.Revision)
}

// del deletes key and returns the revision of the change.
func del(tb testing.TB, cli *clientv3.Client, key string) uint64 {
	tb.Helper()
	resp, err := cli.Delete(reqCtx(tb), key)
	if err != nil {
		tb.Fatalf("delete %s: %v", key, err)
	}
	return uint64(resp.Header.Revision)
}

// load puts n keys prefix/00000000 … with values of size bytes, a
// transaction of 1,000 puts at a time.
func load(tb testing.TB, cli *clientv3.Client, prefix string, n, size int) {
	tb.Helper()
	value := strings.Repeat("v", size)
	for i := 0; i < n; {
		ops := make([]clientv3.Op, 0, 1000)
		for ; i < n && len(ops) < cap(ops); i++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/%08d", prefix, i), value))
		}
		if _, err := cli.Txn(reqCtx(tb)).Then(ops...).Commit(); err != nil {
			tb.Fatalf("load %s: %v", prefix, err)
		}
	}
}

// tlsFiles are the PEM files of a CA, a server certificate for 127.0.0.1
// and a client certificate, all made for the test.
type tlsFiles struct {
	ca                    string
	serverCert, serverKey string
	clientCert, clientKey string
}

// makeTLS writes a CA and certificates signed by it into a temporary
// directory.
func makeTLS(tb testing.TB) *tlsFiles {
	tb.Helper()
	dir := tb.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kvconf test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	tf := &tlsFiles{ca: filepath.Join(dir, "ca.pem")}
	writePEM(tb, tf.ca, "CERTIFICATE", caDER)

	issue := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			tb.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(tb, certFile, "CERTIFICATE", der)
		writePEM(tb, keyFile, "PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	tf.serverCert, tf.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth)
	tf.clientCert, tf.clientKey = issue(3, "client", x509.ExtKeyUsageClientAuth)
	return tf
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// clientTLS returns the TLS configuration of the test's own client.
func (tf *tlsFiles) clientTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	cfg, err := (transport.TLSInfo{CertFile: tf.clientCert, KeyFile: tf.clientKey, TrustedCAFile: tf.ca}).ClientConfig()
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}
