# syntax=docker/dockerfile:1
#
# Container image of devin-exporter.
#
#   docker build -t devin-exporter .
#   docker build -t devin-exporter:0.1.0 \
#     --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse --short=12 HEAD)" \
#     --build-arg SOURCE_URL=https://github.com/OWNER/devin-exporter .
#
# Needs BuildKit (Docker's default builder since Engine 23.0): the optional build.rs and
# benches/ are copied with wildcards that may match nothing, which BuildKit allows and the
# legacy builder rejects.
#
# Runtime image: gcr.io/distroless/cc-debian12 (glibc, libgcc_s, CA certificates, tzdata; no
# shell, no package manager), not a static musl build on distroless/static or scratch:
# - the binary is a normal `cargo build --release --locked` for the gnu target, dynamically
#   linked against glibc. The builder is Debian 12 (bookworm) like the runtime, so it runs
#   with the same glibc it was linked against (a trixie builder could need a newer one);
# - TLS is rustls with the aws-lc-rs provider, whose aws-lc-sys compiles C: a musl build
#   needs the Rust musl target and a musl C toolchain in the builder, and musl's malloc is
#   slow under tokio's multi-threaded load unless another allocator is linked in. That is
#   extra moving parts for a few MB less;
# - rustls-platform-verifier reads the system's CA roots, and this image ships them in
#   /etc/ssl/certs/ca-certificates.crt;
# - the :nonroot tag runs as uid/gid 65532 (set explicitly below, numerically, so that
#   Kubernetes' runAsNonRoot can verify it).
# For reproducible builds pin both base images by digest (rust:...@sha256:...).

# Toolchain of the builder. Debian 12 on purpose, see above.
ARG RUST_VERSION=1.95
# Image metadata (OCI labels). VERSION follows Cargo.toml; REVISION is also compiled into
# the binary (devin_exporter_build_info), so the build needs no .git directory.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=""

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# 1. Dependencies only, cached as long as the manifest and the lock file do not change:
#    build them against empty stand-ins of the crate's sources. Cargo.toml's explicit
#    [[bench]] targets must exist for the manifest to load, so benches/ comes along
#    (as does build.rs, so that its own build-dependencies are compiled here too).
COPY Cargo.toml Cargo.lock build.r[s] ./
COPY bench[e]s ./benches/
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2. The crate itself. Declared only now, so that a new revision does not invalidate the
#    cached dependency layer above.
ARG REVISION
ENV DEVIN_EXPORTER_REVISION=${REVISION}
COPY src ./src
# The stand-ins were built after the real files' modification times: touch the crate roots
# so that cargo sees them as changed and rebuilds the crate (not the dependencies).
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && ./target/release/devin-exporter --version

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION
ARG REVISION
ARG SOURCE_URL
LABEL org.opencontainers.image.title="devin-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Devin API v3 sessions" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=builder /build/target/release/devin-exporter /usr/local/bin/devin-exporter

USER 65532:65532
# DEVIN_LISTEN_ADDRESS defaults to 0.0.0.0:10164.
EXPOSE 10164
# The binary checks its own /healthz: this image has no shell and no curl. It finds the port
# in DEVIN_LISTEN_ADDRESS and uses https when DEVIN_WEB_CONFIG_FILE configures TLS; for
# anything else, override it in exec form, e.g. in Compose
#   healthcheck: {test: ["CMD", "/usr/local/bin/devin-exporter", "healthcheck", "--url", "http://127.0.0.1:9999/healthz"]}
# (`docker run --health-cmd` goes through a shell, which this image does not have).
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/devin-exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/devin-exporter"]
