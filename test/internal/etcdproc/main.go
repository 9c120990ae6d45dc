// Command etcdproc runs one etcd member, embedded, as a process of its own,
// so that the fault tests can kill -9 it, stop it with SIGSTOP and start it
// again on the same ports and data directory. It takes the flags of the
// etcd binary that it needs, spelled the same, so that a test may run
// $ETCD_BIN instead with the same arguments:
//
//	etcdproc --name N --data-dir DIR --listen-client-urls URL
//	  --advertise-client-urls URL --listen-peer-urls URL
//	  --initial-advertise-peer-urls URL --initial-cluster N=URL
//	  [--unsafe-no-fsync]
//
// It serves until SIGTERM or SIGINT, then stops cleanly; it logs nothing
// but errors.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap" //nolint:depguard // etcd's server takes a zap logger; this silences it
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("etcdproc", flag.ContinueOnError)
	name := fs.String("name", "default", "member name")
	dir := fs.String("data-dir", "", "data directory")
	listenClient := fs.String("listen-client-urls", "", "client URL to listen on")
	advClient := fs.String("advertise-client-urls", "", "client URL to advertise")
	listenPeer := fs.String("listen-peer-urls", "", "peer URL to listen on")
	advPeer := fs.String("initial-advertise-peer-urls", "", "peer URL to advertise")
	cluster := fs.String("initial-cluster", "", "initial cluster, NAME=PEER_URL")
	noFsync := fs.Bool("unsafe-no-fsync", false, "skip fsync (test data only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.InitialCluster = *cluster
	cfg.InitialClusterToken = "kvconf-fault"
	cfg.UnsafeNoFsync = *noFsync
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	for _, u := range []struct {
		dst *[]url.URL
		s   string
	}{
		{&cfg.ListenClientUrls, *listenClient},
		{&cfg.AdvertiseClientUrls, *advClient},
		{&cfg.ListenPeerUrls, *listenPeer},
		{&cfg.AdvertisePeerUrls, *advPeer},
	} {
		p, err := url.Parse(u.s)
		if err != nil || u.s == "" {
			fmt.Fprintf(os.Stderr, "etcdproc: bad URL %q: %v\n", u.s, err)
			return 2
		}
		*u.dst = []url.URL{*p}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdproc: start: %v\n", err)
		return 1
	}
	defer e.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcdproc: %v\n", err)
		return 1
	case <-sigs:
		return 0
	}
	select {
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcdproc: %v\n", err)
		return 1
	case <-sigs:
		return 0
	}
}
