# syntax=docker/dockerfile:1
# The backupctl worker (and CLI) image: the JavaScript compiled in a build stage (tsc, a dev
# dependency) plus production packages; no TypeScript and no tsx at run time.
# Debian, not Alpine: @temporalio/worker ships a glibc native module.
# zstd-napi (WAL sealing) builds its native module at install time: python3, make and g++.
FROM node:20-bookworm-slim AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

FROM toolchain AS build
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common ./common
COPY engine ./engine
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY client ./client
RUN npm run build

# Production packages, built with the toolchain, copied into the image without it.
FROM toolchain AS deps
WORKDIR /deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim

# gpg encrypts, zstd compresses, pg_dump/pg_dumpall/pg_restore come from postgresql-client.
# Debian bookworm's postgresql-client is PostgreSQL 15, and pg_dump refuses to dump a newer
# server: for PostgreSQL 16+ install postgresql-client-<major> from apt.postgresql.org (PGDG).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gnupg zstd postgresql-client \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so that a source change does not reinstall them.
COPY package.json package-lock.json ./
COPY --from=deps /deps/node_modules ./node_modules

# The compiled code only: bin/buildState.js finds no sources beside it, so dist/ is what runs.
COPY --from=build /build/dist ./dist
COPY bin ./bin

# Mount points for the configuration and the filesystem repositories, owned by the runtime
# user so that named volumes mounted there start out writable.
RUN install -d -o node -g node /etc/backupctl /var/lib/backupctl /var/lib/backupctl/repository /mnt/nas/backupctl

# The node image's unprivileged user (uid 1000). The code stays root-owned: read-only to it.
USER node

ENTRYPOINT ["node", "bin/backupctl.js"]
CMD ["worker"]
