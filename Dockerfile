# Multi-stage build of the gateway (default target) and the dev key service
# (`--target dev-key-service`). Dependencies are cooked in their own layer
# (cargo-chef), so a code change rebuilds only the workspace crates.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Cook and build select the same packages and targets: the same feature set, so the
# final build reuses every cooked dependency instead of recompiling some.
RUN cargo chef cook --release --locked --recipe-path recipe.json -p gateway -p auth-jwt --bins
COPY . .
RUN cargo build --release --locked -p gateway -p auth-jwt --bins

# Dev only: issues tokens to anyone who knows the dev passwords.
FROM gcr.io/distroless/cc-debian12:nonroot AS dev-key-service
COPY --from=builder /app/target/release/dev-key-service /usr/local/bin/dev-key-service
USER 65532:65532
EXPOSE 8081
ENV DEV_KEY_SERVICE_LISTEN=0.0.0.0:8081 \
    DEV_KEY_SERVICE_KEY_FILE=/tmp/dev-key.pem
ENTRYPOINT ["/usr/local/bin/dev-key-service"]

FROM gcr.io/distroless/cc-debian12:nonroot AS gateway
COPY --from=builder /app/target/release/gateway /usr/local/bin/gateway
COPY --from=builder /app/target/release/seed /usr/local/bin/seed
ENV APP_ENV=production \
    GRAPHQL_SERVER_HOST=0.0.0.0 \
    GRAPHQL_SERVER_PORT=4000
USER 65532:65532
EXPOSE 4000
# Exec form: the gateway is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["/usr/local/bin/gateway"]
