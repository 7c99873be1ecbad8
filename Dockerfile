# Small runtime image for airlock. Build: docker build -t airlock .
FROM rust:1.95-slim-bookworm AS build
# pg_query (libpg_query, Postgres's own parser) is built with bindgen: it needs libclang.
# openssl-sys (the RSA key of MySQL's caching_sha2_password exchange) links libssl.
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev clang libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p airlock && strip target/release/airlock

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 airlock
COPY --from=build /src/target/release/airlock /usr/local/bin/airlock
COPY proxy.toml.example /etc/airlock/proxy.toml
USER airlock
EXPOSE 6432 6480
ENTRYPOINT ["/usr/local/bin/airlock"]
CMD ["serve", "--config", "/etc/airlock/proxy.toml"]
