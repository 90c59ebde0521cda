# Classroom SFU server image. Media is UDP: publish the ICE port range as well as 3000,
# or run with --network host (simplest for WebRTC). See docs/deploy.md for coturn.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    PORT=3000

WORKDIR /app
COPY pyproject.toml setup.cfg README.md ./
COPY api ./api
COPY sfu ./sfu
COPY scripts ./scripts
COPY web ./web
RUN pip install --no-cache-dir . \
    && useradd --system --home /data sfu \
    && mkdir -p /data && chown sfu /data

USER sfu
VOLUME ["/data"]
EXPOSE 3000
CMD ["classroom-sfu"]
