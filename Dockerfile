# syntax=docker/dockerfile:1
#
# The outlake image: the `outlake` binary and CA certificates on distroless, run as a non-root
# user. Build from the repository root:
#
#   docker build -t registry.example.com/outlake:0.1.0 .
#
# The image runs one command (`ENTRYPOINT ["/usr/local/bin/outlake"]`); Kubernetes passes the
# subcommand and flags as `args` (deploy/kubernetes/). tests/it/deploy.rs checks the final stage:
# a numeric non-root USER (so `runAsNonRoot` can verify it) and an ENTRYPOINT naming outlake.

# ---- build ---------------------------------------------------------------------------------------
# The toolchain the project is built and tested with (at least the workspace's rust-version);
# bookworm, like the runtime's glibc (distroless cc-debian12), so the binary links against what it
# runs on.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo.toml names its tests and benches, which cargo wants to see even
# when it builds only the binary. .dockerignore keeps target/ and the rest out.
COPY . .
# The registry and target/ are cache mounts: a rebuild after a source change compiles only
# outlake's own crates. --locked: exactly the dependency versions of Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin outlake \
    && install -D -m 0755 target/release/outlake /out/outlake

# ---- runtime -------------------------------------------------------------------------------------
# distroless cc: glibc, libgcc, CA certificates (/etc/ssl/certs, read by rustls' platform
# verifier for Graph, the identity platform and object storage) and tzdata; no shell, no package
# manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/outlake /usr/local/bin/outlake
# 65532 = distroless "nonroot". Numeric, so the kubelet can check runAsNonRoot.
USER 65532:65532
# outlake keeps nothing on local disk: the lake and its commit records live in object storage.
# Kubernetes manifests mount an emptyDir at /tmp (the root filesystem is read-only).
ENV TMPDIR=/tmp
ENTRYPOINT ["/usr/local/bin/outlake"]
CMD ["--help"]
