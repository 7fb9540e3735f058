# nginx with the RTMP module from Debian's own packages (nginx, libnginx-mod-rtmp): the same
# build that tests/e2e_nginx_rtmp.rs and .ci/run exercise, with Debian's security updates.
# Build context: deploy/ (docker-compose.yml does this).

FROM debian:bookworm-slim

# Versions are not pinned: Debian stable replaces a package version when a security update
# lands and the old one leaves the archive, so a pin breaks the build exactly when an update
# matters. The base image tag pins the release (bookworm); rebuild to take updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/recordings \
    && chown www-data:www-data /var/recordings

COPY nginx-rtmp.conf /etc/nginx/nginx.conf

# The recordings directory; its ownership seeds a new named volume.
VOLUME ["/var/recordings"]
EXPOSE 1935 8081

# www-data: uid and gid 33, fixed by Debian's base-passwd.
USER 33:33

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8081 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 2 status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]

# -e stderr: the error log before the configuration is read (the compiled-in one is under
# /var/log/nginx, which www-data cannot write).
CMD ["nginx", "-e", "stderr"]
