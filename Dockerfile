# syntax=docker/dockerfile:1
# kvconf container image: a static binary on a minimal, non-root base.
#
#   docker build -t kvconf .
#   docker run --rm kvconf -version
#
# The image holds kvconf alone. To render the config of a service and run
# it in one container (a sidecar-less setup), copy the binary into the
# service's image and make "kvconf exec" its entrypoint, so kvconf renders
# first, starts the service as its child, signals it on each change and
# exits with its exit code (examples/docker/ does it for HAProxy):
#
#   COPY --from=kvconf /usr/local/bin/kvconf /usr/local/bin/kvconf
#   ENTRYPOINT ["kvconf", "exec", "-watch", "-backend", "etcd", "-node", "http://etcd:2379", \
#               "-listen", ":9120", "-reload-signal", "SIGUSR2", "--"]
#   CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
#
# As its own container, kvconf writes into a volume shared with the
# service (mount conf.d/ and templates/ at /etc/confd).

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# What -version prints (make build stamps the same from git):
#   docker build --build-arg VERSION=$(git describe --tags) --build-arg REVISION=$(git rev-parse HEAD) .
ARG VERSION=
ARG REVISION=
# Static: CGO_ENABLED=0 links no libc, so the binary runs on a base without
# one (test/ops_test.go TestStaticBinary builds it the same way and checks it).
RUN CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/kvconf/kvconf/cli.version=${VERSION} -X github.com/kvconf/kvconf/cli.revision=${REVISION}" \
        -o /out/kvconf ./cmd/kvconf

# distroless/static: CA certificates, /etc/passwd with nonroot (65532) and
# tzdata, no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kvconf /usr/local/bin/kvconf
# Non-root by default; run as root only where dest files demand it.
USER 65532:65532
# kvconf reads /etc/confd/conf.d and /etc/confd/templates by default.
WORKDIR /etc/confd
# -listen :9120 serves /metrics, /health and /ready when asked for.
EXPOSE 9120
ENTRYPOINT ["/usr/local/bin/kvconf"]
CMD ["-help"]
