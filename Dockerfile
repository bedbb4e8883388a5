# mutebot in a container: configuration from the environment, the database on the /data volume.
#   docker build -t mutebot .
#   docker run -d --name mutebot --env-file .env -v mutebot-data:/data -p 127.0.0.1:8080:8080 mutebot
# deploy/README.md has the whole story (compose, a reverse proxy for PUBLIC_BASE_URL, systemd without Docker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY cogs ./cogs
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home mutebot \
    && mkdir /data \
    && chown mutebot:mutebot /data

# Everything else (DISCORD_TOKEN, PUBLIC_BASE_URL, TOKEN_ENCRYPTION_KEY, ...) comes from the environment at run time:
# `docker run --env-file .env` or compose's env_file. Nothing secret is baked into the image.
# WEB_HOST: listen on every interface of the container, or the published port reaches nothing.
ENV DATABASE_PATH=/data/mutebot.sqlite3 \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8080
# Owned by mutebot before it becomes a volume, so a fresh named volume is writable by the bot.
VOLUME /data
WORKDIR /data
USER mutebot
EXPOSE 8080

# /healthz answers 200 while the database answers; urlopen raises (exit 1) on anything else or no answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WEB_PORT', '8080') + '/healthz', timeout=4)"]

# `mutebot run` applies pending migrations, then connects to Discord and serves /oauth/callback and /healthz.
# SIGTERM (docker stop) shuts it down cleanly.
ENTRYPOINT ["mutebot"]
CMD ["run"]
