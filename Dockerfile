# minilvb server image. Build: docker build -t minilvb .   (deploy/README-deploy.md)
# tests/deploy.rs checks this file against the configuration keys and the routes.

ARG RUST_VERSION=1

# ---- build ---------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies first, from the manifest, the lock file and stub sources: this layer is
# rebuilt only when Cargo.toml, Cargo.lock or benches/ change. Cargo refuses a manifest whose
# declared targets have no file, so the benches (never built here) are copied as they are;
# tests/deploy.rs fails when Cargo.toml declares a target this stage does not provide.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin minilvb

# The crate itself. The migrations are embedded by include_str!, so they are build input too.
# COPY keeps the files' old modification times, which would look older than the stub build:
# touching the crate roots makes cargo rebuild the crate instead of keeping the stub binary.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin minilvb \
    && ./target/release/minilvb --version

# ---- run -----------------------------------------------------------------------------------
# Only the binary and the migrations. No CA certificates: minilvb makes no TLS connections
# (its sqlx has no TLS feature; it only answers HTTP). No curl: the health check below uses
# bash, which the image already has.
FROM debian:bookworm-slim

RUN groupadd --system --gid 10001 minilvb \
    && useradd --system --uid 10001 --gid minilvb --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin minilvb \
    && mkdir -p /data \
    && chown minilvb:minilvb /data

COPY --from=build /src/target/release/minilvb /usr/local/bin/minilvb
COPY --from=build /src/migrations /app/migrations

# The working directory holds no minilvb.toml: configuration comes from the environment
# (MINILVB_<SECTION>__<KEY>), or from a file given with MINILVB_CONFIG.
WORKDIR /app

# Override these by the same names (not by their aliases MINILVB_SERVER__BIND and
# MINILVB_DATABASE_URL: two names for one key would race).
ENV MINILVB_BIND=0.0.0.0:8080 \
    MINILVB_DATABASE__URL="sqlite:///data/minilvb.db?mode=rwc" \
    MINILVB_LOG_FORMAT=json \
    MINILVB_LOG=info

# The SQLite database (the default); unused when MINILVB_DATABASE__URL names MySQL/MariaDB.
VOLUME ["/data"]
EXPOSE 8080

USER 10001:10001

# SIGTERM drains requests, then writes every dirty room: give the container at least
# server.shutdown_timeout_secs + 5 s (docker stop -t 30; stop_grace_period in compose).
STOPSIGNAL SIGTERM

# GET /healthz with bash builtins only (/dev/tcp, printf, read): no curl in the image, and no
# child process that PID 1 (minilvb, which does not reap) would have to reap. The port is the
# one in MINILVB_BIND.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "b=${MINILVB_BIND:-0.0.0.0:8080}; exec 3<>/dev/tcp/127.0.0.1/${b##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 2 status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]

ENTRYPOINT ["/usr/local/bin/minilvb"]
CMD ["serve"]
