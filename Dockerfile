# A Weir node. Masters find each other through DNS (SERVICE_NAME), as in the second seed.
FROM node:20-bookworm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY . .
RUN npm run build && npm prune --omit=dev
# Weir runs as the image's unprivileged `node` user: a task that escapes its executor still
# holds no root. The code stays root's, read-only to it; only /data is its own.
RUN mkdir -p /data && chown node:node /data
USER node
ENV PORT=3000 WEIR_DATA_DIR=/data
VOLUME /data
EXPOSE 3000
# --host 0.0.0.0 listens everywhere and advertises the container's own IPv4, from which the
# node id follows (c*256+d); SERVICE_NAME switches on DNS discovery.
ENTRYPOINT ["node", "bin/weir.js"]
CMD ["master", "--host", "0.0.0.0", "--bootstrap-expect", "3"]
