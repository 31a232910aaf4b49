# simlink: the similarity and retrieval service, CPU-only, with the embedded model baked in.
#
# Build arguments:
#   BASE_IMAGE       a Debian-based image with python3 (default python:3.11-slim)
#   TORCH_SPEC       the PyTorch requirement (default torch==2.13.0)
#   TORCH_INDEX_URL  extra index for CPU-only PyTorch wheels; set it empty when the wheel comes
#                    from docker/wheels/ instead
# Optional BuildKit secret "pip_cert": a CA bundle for pip behind a TLS-intercepting proxy; it
# is used for the install step only and does not stay in the image.

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 -m venv /opt/venv
COPY docker/wheels/ /wheels/
COPY pyproject.toml README.md /src/
COPY service /src/service
COPY models /src/models
COPY index /src/index
COPY evaluation /src/evaluation
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --find-links /wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC" /src \
    && /opt/venv/bin/python -c "import models.loader as m; m.resolve_model_source('embedded')"

FROM ${BASE_IMAGE}
RUN useradd --create-home --uid 10001 simlink
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    MALLOC_ARENA_MAX=2 \
    TRANSFORMERS_OFFLINE=1 \
    SIMLINK_HOST=0.0.0.0 \
    SIMLINK_PORT=8000
USER simlink
WORKDIR /home/simlink
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SIMLINK_PORT', '8000'), timeout=4)"]
CMD ["simlink", "serve"]
