# syntax=docker/dockerfile:1
#
# Two stages: build both binaries against the committed Cargo.lock, then copy them into a
# slim runtime that runs as an unprivileged user. The same image runs the API
# (`redress-api`, the default command), the worker (`redress-worker`) and one-off admin
# commands (`redress-api migrate`, `redress-api admin …`).

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep downloaded crates and compiled dependencies between builds; the
# binaries are copied out because the target directory is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
    && mkdir -p /out \
    && cp target/release/redress-api target/release/redress-worker /out/

FROM debian:bookworm-slim AS runtime
# ca-certificates: webhook deliveries and any TLS connection to Postgres or RabbitMQ.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid so volume permissions are predictable. /keys is created here, owned by
# that user, so a named volume mounted there starts out writable for `admin keygen`.
RUN groupadd --system --gid 10001 redress \
    && useradd --system --uid 10001 --gid redress --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin redress \
    && mkdir -p /keys \
    && chown redress:redress /keys \
    && chmod 700 /keys
COPY --from=builder /out/redress-api /out/redress-worker /usr/local/bin/
USER redress:redress
ENV REDRESS_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
CMD ["redress-api", "serve"]
