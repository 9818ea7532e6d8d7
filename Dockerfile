# syntax=docker/dockerfile:1
# One image with every binary of the withdrawal orchestrator; docker-compose.yml
# and the Kubernetes manifests pick one with their command. Built and run as
# a non-root user on a distroless base (no shell: health checks use
# `withdrawctl health`).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bin/ \
      ./cmd/consumer ./cmd/poller ./cmd/sandbox ./cmd/withdrawctl \
 && mkdir -p /out/keys

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The compose "keys" volume is initialised from this directory: owned by
# the non-root user so that `withdrawctl devkeys --dir /keys` can write.
COPY --from=build --chown=65532:65532 /out/keys /keys
USER 65532:65532
EXPOSE 8080
ENV WITHDRAW_HTTP_ADDR=0.0.0.0:8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["withdrawctl", "health", "http://127.0.0.1:8080/readyz"]
CMD ["consumer"]
