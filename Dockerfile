# syntax=docker/dockerfile:1
# The scimgate image: one binary, every process kind (`serve`, `gateway`,
# `admin`, `worker`, `migrate`). How to run it: docs/deployment.md.
#
#   docker build -t scimgate:latest .
#   docker run -p 8080:8080 -v scimgate-data:/var/lib/scimgate scimgate:latest

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cargo registry and the target directory are BuildKit cache mounts, so a
# rebuild after a source change compiles the workspace crates only, not
# every dependency again. The binary is copied out of the cached target
# directory in the same step (the mount is not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p scimgate \
 && install -m 0755 target/release/scimgate /usr/local/bin/scimgate

FROM debian:bookworm-slim
# CA certificates for outbound HTTPS (webhooks, outbound SCIM); nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 scimgate \
 && useradd --system --uid 10001 --gid scimgate --no-create-home \
        --home-dir /var/lib/scimgate --shell /usr/sbin/nologin scimgate \
 && install -d -o scimgate -g scimgate -m 0750 /var/lib/scimgate
COPY --from=builder /usr/local/bin/scimgate /usr/local/bin/scimgate

# Defaults for a container: listen on every interface, keep the embedded
# SQLite database (and its generated keys) in the data volume, JSON logs.
# With SCIMGATE_DATABASE_URL (PostgreSQL) the data directory is not used.
ENV SCIMGATE_LISTEN=0.0.0.0:8080 \
    SCIMGATE_DATA_DIR=/var/lib/scimgate \
    SCIMGATE_LOG_FORMAT=json
WORKDIR /var/lib/scimgate
VOLUME ["/var/lib/scimgate"]
USER 10001:10001
# SCIM, admin API, console, /metrics, /healthz and /readyz: one listener.
EXPOSE 8080

# No HEALTHCHECK: the image carries no HTTP client (no curl or wget) to
# call /healthz with, on purpose. Health is checked from outside, over
# HTTP: Kubernetes' probes (deploy/k8s) and the load balancer's /readyz
# check (deploy/compose/haproxy.cfg).

# scimgate stops gracefully on SIGTERM (docker stop): in-flight requests
# finish, up to 30 s.
ENTRYPOINT ["scimgate"]
CMD ["serve"]
