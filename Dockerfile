# syntax=docker/dockerfile:1
# One image, two programs: `verdict-agent` (the node DaemonSet) and
# `verdict-aggregator` (the Deployment). There is no ENTRYPOINT: the
# manifests name the program in `command`, e.g.
#   command: [verdict-agent]       args: [run, --aggregator=..., ...]
#   command: [verdict-aggregator]  args: [--http=:8080, ...]
# The default user is 65532 (non-root) for the aggregator; the agent's
# DaemonSet overrides it to uid 0 with every capability dropped but
# DAC_READ_SEARCH (docs/DESIGN.md, "Trust": capabilities added to a non-root user
# do nothing).
#
# Node 24 LTS: better-sqlite3 12 (a native addon) supports Node 20 to 25. The
# build and runtime stages use the same base so the addon's ABI and libc match.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
# better-sqlite3 compiles from source when no prebuilt binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source changes reuse this layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# No package managers at run time; a data directory the default user owns
# (the aggregator's default SQLite location when run without manifests).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && mkdir -p /var/lib/verdict \
 && chown 65532:65532 /var/lib/verdict
# Only what the programs load: compiled code, production dependencies, and the
# data files found relative to package.json (common/package-root.ts).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/proto ./proto
COPY --from=build /src/agent/cis/benchmarks ./agent/cis/benchmarks
COPY --from=build /src/aggregator/store/migrations ./aggregator/store/migrations
COPY --from=build /src/examples/flows ./examples/flows
# The dashboard's static pages (aggregator/ui serves them from here under /ui/).
COPY --from=build /src/aggregator/ui/static ./aggregator/ui/static
# The programs on PATH (package.json "bin"; the build made them executable and
# they start with #!/usr/bin/env node).
RUN ln -s /app/dist/agent/cli.js /usr/local/bin/verdict-agent \
 && ln -s /app/dist/aggregator/cli.js /usr/local/bin/verdict-aggregator \
 && verdict-agent benchmarks >/dev/null \
 && verdict-aggregator --help >/dev/null
USER 65532:65532
EXPOSE 8080 9090
CMD ["verdict-aggregator", "--db", "sqlite:/var/lib/verdict/verdict.db"]
