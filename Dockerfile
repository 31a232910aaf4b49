# simlink: the similarity and retrieval service, CPU-only, with the embedded model baked in, the demo
# knowledge base in /srv/examples, and the `simlink` command for serving, training and indexing.
#
# Build arguments:
#   BASE_IMAGE       a Debian-based image with python3 (default python:3.11-slim)
#   TORCH_SPEC       the PyTorch requirement (default torch==2.13.0)
#   TORCH_INDEX_URL  extra index for CPU-only PyTorch wheels; set it empty when the wheel comes
#                    from docker/wheels/ instead (a wheel there must match the base image's Python)
# Optional BuildKit secret "pip_cert": a CA bundle for pip behind a TLS-intercepting proxy; it
# is used for the install steps only and does not stay in the image.
#
# Every other dependency is installed at the version in docker/requirements.lock (docker/lock.sh
# regenerates it), so builds a month apart install the same packages. The project's own packages
# are whatever pyproject.toml lists; .dockerignore keeps the rest of the checkout out.

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 -m venv /opt/venv
# Dependencies first, in a layer of their own: it is rebuilt only when the lock or PyTorch changes.
COPY docker/requirements.lock /tmp/requirements.lock
RUN --mount=type=secret,id=pip_cert,required=false \
    --mount=type=bind,source=docker/wheels,target=/wheels \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --find-links /wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC" -r /tmp/requirements.lock
# Then the project, without dependencies: one missing from the lock fails `pip check` here.
RUN --mount=type=secret,id=pip_cert,required=false \
    --mount=type=bind,target=/src,rw \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import models.loader as m; m.resolve_model_source('embedded')"

FROM ${BASE_IMAGE}
# /srv/linker is owned by the service's user so that a named volume mounted there starts writable
# (docker-compose.yml's job service writes trained models and indexes into it).
RUN useradd --create-home --uid 10001 simlink \
    && mkdir -p /srv/runs /srv/linker && chown simlink:simlink /srv/linker
COPY --from=build /opt/venv /opt/venv
COPY examples /srv/examples
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    MALLOC_ARENA_MAX=2 \
    TRANSFORMERS_OFFLINE=1 \
    SIMLINK_HOST=0.0.0.0 \
    SIMLINK_PORT=8000
USER simlink
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SIMLINK_PORT', '8000'), timeout=4)"]
CMD ["simlink", "serve"]
