# meshledger node image. It starts FROM base images built on this machine, so no container registry is needed:
#
#   scripts/docker/build-base.sh                          # meshledger-base:bookworm{,-build}; reused when unchanged
#   docker build --network host -t meshledger:local .     # --network host: npm reaches the registry as the host does
#
# Stage 1 (build) installs every dependency, compiles the TypeScript and prunes to production dependencies.
# Stage 2 (runtime) holds only node, busybox, the compiled code, production node_modules, schemas and two helper
# scripts; no npm, compiler, tests or dev dependencies. It runs as uid 10001 (user `meshledger`).
FROM meshledger-base:bookworm-build AS build
WORKDIR /src
ENV npm_config_cache=/tmp/npm-cache
COPY package.json package-lock.json ./
# Dependencies get their own layer, so a source change does not fetch them again. No install scripts run: the
# native modules (classic-level, msgpackr-extract) ship prebuilt binaries that they find at run time.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY scripts/docker ./scripts/docker
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && find dist -name '*.d.ts*' -exec rm {} + \
 && rm -rf /tmp/npm-cache && (rmdir node_modules/@* 2>/dev/null; true)

FROM meshledger-base:bookworm
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/scripts/docker ./dist/scripts/docker
COPY bin ./bin
COPY schemas ./schemas
COPY scripts/compose-init.sh ./scripts/compose-init.sh
# Folders for named volumes: an empty volume takes the owner of the folder it is mounted on.
RUN mkdir -p /data /shared \
 && chown 10001:10001 /data /shared /home/meshledger
USER 10001:10001
ENV NODE_ENV=production HOME=/home/meshledger
EXPOSE 8645 30400
# JSON-RPC getHealth on the --rpc port of the node this container runs (see scripts/docker/healthcheck.ts).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/dist/scripts/docker/healthcheck.js"]
ENTRYPOINT ["node", "/app/bin/meshledger.js"]
CMD ["--help"]
