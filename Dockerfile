# tollgate container image: the release binary on a minimal runtime.
#
#   docker build -t ghcr.io/tollgate/tollgate:0.1.0 .
#   docker run --rm -p 8080:8080 -p 8081:8081 \
#     -e TOLLGATE_REDIS_URL=redis://host.docker.internal:6379 \
#     -e TOLLGATE_SECRET=change-me ghcr.io/tollgate/tollgate:0.1.0
#
# The Helm chart (helm/tollgate) runs this image with its own arguments
# (--config FILE), as the non-root user below, on a read-only root file system.

FROM rust:1-bookworm AS build
WORKDIR /src
# Only what the build reads (see .dockerignore).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/tollgate /out/tollgate

# glibc, libgcc and CA certificates (for rediss://), no shell, no package
# manager. The binary needs nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="API gateway with a built-in OAuth 2.0 authorization server on Redis" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tollgate /usr/local/bin/tollgate
# distroless's "nonroot" user, numeric so that runAsNonRoot can check it.
USER 65532:65532
# Data plane, control plane (/hello, /metrics, management API).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/tollgate"]
# Listen on every interface, not on loopback (tollgate's default), so the
# ports are reachable from outside the container. Arguments given to the
# container replace these (the chart passes --config and sets the addresses
# in the file).
CMD ["--listen", "0.0.0.0:8080", "--control-listen", "0.0.0.0:8081"]
