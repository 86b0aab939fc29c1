# regtrust container image: a static binary on a base with no shell, non-root by default, for
# linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t regtrust:0.1.0 .
# The build stage runs on the builder's own platform (BUILDPLATFORM) and cross-compiles to the
# target's musl triple with cargo-zigbuild (zig as the C compiler and linker: aws-lc-sys compiles
# C, and zig ships musl for every target). No emulation. The second TLS stack (OpenSSL) is built
# from source and linked statically (`--features vendored-openssl`: openssl-src, which needs perl
# and make, both in the rust image); on Debian hosts and in CI regtrust links the system libssl. Cannot be built on this project's machines
# (no Docker engine): hadolint and checkov check it in tests/deploy.rs.
#
# Bases are pinned by digest (the tag beside it says which; bump both together):
#   rust:1.95-bookworm (Cargo.lock needs rustc >= 1.91) and gcr.io/distroless/static-debian12:nonroot.
FROM --platform=$BUILDPLATFORM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip \
 && rm -rf /var/lib/apt/lists/*
# DL3008 (apt versions unpinned) is accepted above: python3-pip only carries zig's installer,
# nothing of it reaches the image, and bookworm's security updates replace pinned versions.
# zig 0.14.1: 0.16's `zig ar` cannot create archives (breaks cc-rs static libraries).
RUN pip3 install --no-cache-dir --break-system-packages ziglang==0.14.1 \
 && cargo install --locked cargo-zigbuild --version 0.21.8
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
ARG TARGETARCH
# build.rs puts the revision into regtrust_build_info; the build context has no .git.
ARG REVISION=unknown
ENV REGTRUST_REVISION=${REVISION}
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64 or arm64)" >&2; exit 1 ;; \
    esac \
 && rustup target add "$target" \
 && cargo zigbuild --release --locked --features vendored-openssl --target "$target" --bin regtrust \
 && cp "target/$target/release/regtrust" /regtrust

# distroless static: no shell, no package manager; runs as nonroot (65532) unless the pod says
# otherwise. The DaemonSet runs it as uid 0 with every capability dropped, to own its hostPath
# state dir (justified there; checkov's root findings are accepted in deploy/kubernetes/base).
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="regtrust" \
      org.opencontainers.image.description="Probes container registries with exactly the TLS trust the node's container runtime uses, and says why a pull would fail." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /regtrust /usr/local/bin/regtrust
USER 65532:65532
EXPOSE 9823
# No HEALTHCHECK: the binary has no client mode to call and the image no shell or curl; kubelet
# probes /healthz and /readyz (the DaemonSet), systemd restarts the unit.
# checkov:skip=CKV_DOCKER_2: health is checked by kubelet's probes of /healthz and /readyz
ENTRYPOINT ["/usr/local/bin/regtrust"]
CMD ["run", "--config", "/etc/regtrust/config/regtrust.toml"]
