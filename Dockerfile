# meshledger node image: `docker build -t meshledger .` — used by docker-compose.yml.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY schemas ./schemas
COPY docs ./docs
COPY scripts ./scripts
COPY harness ./harness
COPY test ./test
# npm ci runs the `prepare` script, which compiles the TypeScript into dist/.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
ENTRYPOINT ["node", "/app/bin/meshledger.js"]
