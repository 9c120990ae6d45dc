// Package test holds kvconf's integration tests: they build the kvconf
// binary and run it against real programs and servers (HAProxy, nginx and
// keepalived from Debian's packages, and later etcd and Consul). It is its
// own module so that test-only dependencies stay out of kvconf's go.mod.
//
// A missing program skips its test with a message saying how to install it,
// except under CI (CI set in the environment), where it fails the run.
package test
