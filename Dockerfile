# Classroom SFU server image. Media is UDP: publish the ICE port range as well as 3000,
# or run with --network host (simplest for WebRTC). See docs/deploy.md for coturn.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    PORT=3000

WORKDIR /app
COPY pyproject.toml setup.py setup.cfg README.md ./
COPY api ./api
COPY sfu ./sfu
COPY scripts ./scripts
COPY web ./web
# gcc only while pip builds the optional C send path (sfu/_fanout.c); the image keeps
# the built module, not the compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && (cd / && python -c "import sfu._fanout" && classroom-sfu --version) \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data sfu \
    && mkdir -p /data && chown sfu /data

USER sfu
VOLUME ["/data"]
EXPOSE 3000
CMD ["classroom-sfu"]
