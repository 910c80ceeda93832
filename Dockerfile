# Dockerfile - container image of gemini-balance (Debian 12, two stages).
#
#   docker build -t gemini-balance .
#   docker run --env-file .env -p 8000:8000 gemini-balance
#
# Build stage: the same toolchain and -dev packages as `make deps`, then
# `make all` (produces build/gemini-balance).  The binary has libevent,
# jansson, SQLite, hiredis, libcurl (GnuTLS build), libssh2 and the part of
# libcrypto libssh2 refers to linked in (Makefile, BIN_STATIC_LIBS).  Runtime
# stage: debian:12-slim with only the shared libraries the binary loads
# (mimalloc, nettle, and what libcurl loads: GnuTLS, nghttp2, idn2, rtmp, psl,
# Kerberos, LDAP, zstd, brotli, zlib) plus the CA store for TLS to Google,
# run as a non-root user.
# Configuration comes from the environment (--env-file .env); a .env file
# mounted at /app/.env is read too (the working directory).
# When a module adds a shared library (e.g. nettle: nettle-dev here, libnettle8
# below), add it to both stages; the ldd check below fails the build otherwise.
# A library linked in statically needs only its -dev package here.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config libevent-dev libcurl4-gnutls-dev libjansson-dev \
        libsqlite3-dev nettle-dev libhiredis-dev libssh2-1-dev libmimalloc-dev \
        libssl-dev libnghttp2-dev libidn2-dev librtmp-dev libpsl-dev libgnutls28-dev \
        libkrb5-dev libldap-dev libzstd-dev libbrotli-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY scripts/embed.sh scripts/
COPY src/ src/
RUN make -j"$(nproc)" all \
 && strip build/gemini-balance

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmimalloc2.0 libnettle8 libgnutls30 libnghttp2-14 libidn2-0 librtmp1 libpsl5 \
        libgssapi-krb5-2 libldap-2.5-0 libzstd1 libbrotli1 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gemini \
 && useradd --system --uid 10001 --gid gemini --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin gemini
COPY --from=build /src/build/gemini-balance /usr/local/bin/gemini-balance
# Fail the image build if a shared library of the binary is missing here.
RUN ! ldd /usr/local/bin/gemini-balance | grep -F 'not found'
WORKDIR /app
# DATA_DIR defaults to ./data: a volume mounted there keeps this ownership
RUN mkdir -p /app/data && chown -R gemini:gemini /app
USER 10001:10001
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/gemini-balance"]
