# regtrust container image: a static binary on a base with no shell, non-root by default.
# Cannot be built on this project's machines (no Docker engine); kept minimal and checked by reading.
#   docker build -t regtrust:0.1.0 .
FROM rust:1.85-bookworm AS build
# musl for a static binary; cmake and clang for aws-lc-sys (rustls' crypto provider).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake clang \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/regtrust /regtrust

# distroless static: no shell, no package manager; runs as nonroot (65532) unless the pod says
# otherwise (the DaemonSet runs it as uid 0 with every capability dropped, to own hostPath dirs).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /regtrust /usr/local/bin/regtrust
USER 65532:65532
EXPOSE 9823
ENTRYPOINT ["/usr/local/bin/regtrust"]
CMD ["run", "--config", "/etc/regtrust/config/regtrust.toml"]
