# syntax=docker/dockerfile:1
# Imaging EHR facade. Node 24 runs the TypeScript sources directly (type stripping): there is no build step.
ARG NODE_IMAGE=node:24-bookworm-slim

# 1. Production dependencies only, from the lock file.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# --ignore-scripts: no production dependency needs an install script (core-js-pure's only prints a banner).
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# 2. The application files, normalised: test files dropped, fhir-profiles/ created when the repo has none yet.
FROM ${NODE_IMAGE} AS source
WORKDIR /src
COPY . .
RUN mkdir -p fhir-profiles && find src -name '*.test.ts' -delete

# 3. Runtime: root-owned, read-only code, run as the unprivileged `node` user.
FROM ${NODE_IMAGE} AS runtime
# Memory bounds, the same as the local stack's (src/stack/facade.ts FACADE_NODE_FLAGS and FACADE_ENV; bench/FINDINGS.md
# §6): MALLOC_ARENA_MAX=2 (glibc's per-thread arenas made RSS grow by ~50 MB under STOW-RS ingest), a 16 MB young
# generation semi-space (V8's default here grows it to 64 MB) and a 512 MB old space (V8 then uses its small-heap
# growing factor). A NODE_OPTIONS set at deployment replaces these flags.
ENV NODE_ENV=production \
    EHR_HOST=0.0.0.0 \
    EHR_PORT=8000 \
    MALLOC_ARENA_MAX=2 \
    NODE_OPTIONS="--max-semi-space-size=16 --max-old-space-size=512"
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /src/package.json ./package.json
COPY --from=source /src/src ./src
COPY --from=source /src/migrations ./migrations
COPY --from=source /src/fhir-profiles ./fhir-profiles
# The DICOMweb conformance statement, served at /docs/dicomweb.
COPY --from=source /src/docs/dicomweb.md ./docs/dicomweb.md
# Durable spill of AuditEvents PostgreSQL cannot take (EHR_AUDIT_SPILL_DIR); a volume in docker-compose.yml.
RUN mkdir -p /var/lib/ehr/audit-spill && chown node:node /var/lib/ehr/audit-spill
ENV EHR_AUDIT_SPILL_DIR=/var/lib/ehr/audit-spill
USER node
EXPOSE 8000
# Slim has no curl: Node's fetch asks /readyz (database and Orthanc both answer).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.EHR_PORT || 8000) + '/readyz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "src/main.ts"]
