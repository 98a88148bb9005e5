# The resizelet image for deploy/ (DaemonSet). Build: docker build -t <registry>/resizelet:<tag> .
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin resizelet

FROM docker.io/library/debian:bookworm-slim
COPY --from=build /src/target/release/resizelet /usr/local/bin/resizelet
# runs as root without capabilities (see deploy/daemonset.yaml); no shell needed at run time
ENTRYPOINT ["/usr/local/bin/resizelet"]
CMD ["run", "--config", "/etc/resizelet/config.toml"]
