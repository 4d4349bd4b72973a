# Multi-stage build of the gateway (default target) and the dev tools image
# (`--target dev-key-service`: the dev key service and the seed tool). Dependencies
# are cooked in their own layer (cargo-chef), so a code change rebuilds only the
# workspace crates. The gateway is built without the `dev` feature: no embedded
# stores, no token issuing, no data-dropping calls in the production binary.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# The patched actix-http (vendor/README.md) is outside the workspace, so the recipe
# does not stub it: the cook builds it from its real source.
COPY vendor vendor
# Cook and build select the same packages, targets and features, so the final builds
# reuse every cooked dependency instead of recompiling some.
RUN cargo chef cook --release --locked --recipe-path recipe.json -p gateway --no-default-features --bin gateway \
 && cargo chef cook --release --locked --recipe-path recipe.json -p gateway --bin seed \
 && cargo chef cook --release --locked --recipe-path recipe.json -p auth-jwt --features dev --bin dev-key-service
COPY . .
RUN cargo build --release --locked -p gateway --no-default-features --bin gateway \
 && cp target/release/gateway /tmp/gateway \
 && cargo build --release --locked -p gateway --bin seed \
 && cargo build --release --locked -p auth-jwt --features dev --bin dev-key-service

# Dev only: issues tokens to anyone who knows the dev passwords; `seed --reset`
# (the dev overlay's Job) replaces the databases' contents with the demo data.
FROM gcr.io/distroless/cc-debian12:nonroot AS dev-key-service
COPY --from=builder /app/target/release/dev-key-service /usr/local/bin/dev-key-service
COPY --from=builder /app/target/release/seed /usr/local/bin/seed
USER 65532:65532
EXPOSE 8081
ENV DEV_KEY_SERVICE_LISTEN=0.0.0.0:8081 \
    DEV_KEY_SERVICE_KEY_FILE=/tmp/dev-key.pem
ENTRYPOINT ["/usr/local/bin/dev-key-service"]

FROM gcr.io/distroless/cc-debian12:nonroot AS gateway
COPY --from=builder /tmp/gateway /usr/local/bin/gateway
ENV APP_ENV=production \
    GRAPHQL_SERVER_HOST=0.0.0.0 \
    GRAPHQL_SERVER_PORT=4000
USER 65532:65532
EXPOSE 4000
# Exec form: the gateway is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["/usr/local/bin/gateway"]
