# syntax=docker/dockerfile:1
# allyapi: build a wheel and install it with the pinned constraints into a venv (builder),
# then copy only that venv into a slim runtime that runs as a non-root user.
#
#   docker build -t allyapi .
#   docker run --rm -p 8000:8000 \
#     -e ALLYAPI_DATABASE_URL=postgresql+asyncpg://allyapi:secret@db/allyapi \
#     -e ALLYAPI_JWT_SECRET=... -e ALLYAPI_JWT_ORGS=acme \
#     -e ALLYAPI_PSEUDONYM_KEY=... -e ALLYAPI_DATA_KEYS=k1:... \
#     allyapi
#
# The image defaults to ALLYAPI_ENV=production, which refuses to start with missing or
# generated secrets (README.md, "Configuration"). Pass -e ALLYAPI_ENV=development to try it
# on embedded SQLite.
# `serve` migrates first; with several replicas run `allyapi migrate` once as a job and start
# the replicas with `serve --no-migrate`.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/allyapi
# The wheel carries the Alembic scripts (pyproject force-includes alembic/ as allyapi/_alembic).
# Runtime dependencies only (no [test] extra), each pinned by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
COPY alembic ./alembic
RUN /opt/allyapi/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/allyapi/bin/pip install --constraint constraints.txt /wheels/allyapi-*.whl \
 && /opt/allyapi/bin/pip check \
 && /opt/allyapi/bin/python -c "from allyapi.core.db.migrations import script_location; print(script_location())"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/allyapi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALLYAPI_ENV=production \
    ALLYAPI_DATA_DIR=/var/lib/allyapi
# Configure by environment (README.md, "Configuration"), at least:
#   ALLYAPI_DATABASE_URL   postgresql+asyncpg://user:pass@host:5432/db
#   ALLYAPI_JWT_SECRET     (>= 32 bytes) and/or ALLYAPI_OIDC_ISSUERS (JSON list)
#   ALLYAPI_PSEUDONYM_KEY  ALLYAPI_DATA_KEYS (id:base64key,...)
RUN groupadd --system --gid 10001 allyapi \
 && useradd --system --uid 10001 --gid allyapi --home-dir /var/lib/allyapi \
        --shell /usr/sbin/nologin allyapi \
 && mkdir -p /var/lib/allyapi \
 && chown allyapi:allyapi /var/lib/allyapi
COPY --from=builder /opt/allyapi /opt/allyapi
WORKDIR /var/lib/allyapi
USER 10001:10001
EXPOSE 8000
# Liveness only (/readyz also checks the database; orchestrators should probe it separately).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3).status == 200 else 1)"]
ENTRYPOINT ["allyapi"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
