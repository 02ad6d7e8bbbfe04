# kubeplug manager image: build stage compiles TypeScript and packs the package; the runtime stage
# installs that package with production dependencies only and runs as a non-root numeric user.
# test/image.test.ts runs the runtime stage's steps outside a container (no engine on CI machines).

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY core ./core
COPY webhooks ./webhooks
COPY plugins ./plugins
COPY cli ./cli
COPY charts ./charts
COPY README.md ./
RUN npm run build && npm pack --ignore-scripts --pack-destination /out

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /out/kubeplug-*.tgz /tmp/kubeplug.tgz
# Runtime stage steps (mirrored by test/image.test.ts):
RUN npm install --omit=dev --no-audit --no-fund --ignore-scripts /tmp/kubeplug.tgz \
 && rm /tmp/kubeplug.tgz \
 && /app/node_modules/.bin/kubeplug --help >/dev/null
USER 65532:65532
ENTRYPOINT ["/app/node_modules/.bin/kubeplug"]
CMD ["run"]
