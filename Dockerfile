# syntax=docker/dockerfile:1
# scalper: slim, multi-stage, non-root. Build:  docker build -t scalper .
# Run:   docker run --rm -v $PWD/config:/config:ro -v scalper-state:/var/lib/scalper \
#               --env-file /etc/scalper/env scalper
# The install steps below are the ones tests/ops/test_deploy.py replays in a clean venv: keep them in sync.

ARG PYTHON_VERSION=3.11

# ---- build: resolve the pinned dependency set into a venv, then the package itself without deps ----
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/scalper
WORKDIR /src
# The runtime lock first (never requirements-dev.lock: no pytest/mypy/ruff/hypothesis in the image): its layer is
# cached until the pins change (uvloop, orjson, ccxt ... are wheels). --require-hashes: every file pip fetches
# must match a hash in the lock.
COPY requirements.lock ./
RUN /opt/scalper/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN /opt/scalper/bin/pip install --no-deps . \
 && /opt/scalper/bin/python -c "import uvloop, orjson, bot" \
 && /opt/scalper/bin/python -m compileall -q /opt/scalper/lib

# ---- runtime: the venv, the example configs, nothing else --------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
RUN groupadd --system --gid 10001 scalper \
 && useradd --system --uid 10001 --gid scalper --home-dir /var/lib/scalper --shell /usr/sbin/nologin scalper \
 && mkdir -p /var/lib/scalper /config \
 && chown scalper:scalper /var/lib/scalper
COPY --from=build /opt/scalper /opt/scalper
COPY config/ /config/
ENV PATH=/opt/scalper/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SCALPER__APP__STATE_DIR=/var/lib/scalper \
    SCALPER__LOG__FORMAT=json
# Config (read-only) and journal/state on volumes: the image is disposable, the journal is not.
VOLUME ["/config", "/var/lib/scalper"]
WORKDIR /var/lib/scalper
USER scalper:scalper
# The ops endpoint (health, metrics, control). Bound to 127.0.0.1 unless SCALPER__OPS__HOST says
# otherwise, which needs SCALPER__OPS__TOKEN (see deploy/docker-compose.yml).
EXPOSE 9310
# 200 only when ok: degraded (stale feed, lost user stream) and halted mark the container unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; p=os.environ.get('SCALPER__OPS__PORT','9310'); sys.exit(0 if u.urlopen(f'http://127.0.0.1:{p}/health', timeout=4).status == 200 else 1)"]
# exec form: scalper itself receives SIGTERM (orderly shutdown:
# stop entries, keep or flatten positions per config, never exit unprotected).
STOPSIGNAL SIGTERM
ENTRYPOINT ["scalper"]
CMD ["run", "-c", "/config/default.toml"]
