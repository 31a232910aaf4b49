#!/bin/sh
# Regenerates docker/requirements.lock, the exact versions the image installs (PyTorch aside: that is
# TORCH_SPEC). Run it from anywhere after changing pyproject.toml's dependencies, or to move the image
# to newer releases; commit the result. It needs Docker and the same variables as the build:
#   BASE_IMAGE (default python:3.11-slim), TORCH_SPEC (default torch==2.13.0),
#   TORCH_INDEX_URL (default the CPU-only PyTorch index; empty: take the wheel from docker/wheels/),
#   PIP_CERT_FILE (optional CA bundle for pip behind a TLS-intercepting proxy).
# The lock holds for the base image's Python version (named in its header): a base image with another
# Python may need other versions, so regenerate it with that image.
set -eu
cd "$(dirname "$0")/.."
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}

set -- -v "$PWD/pyproject.toml:/project/pyproject.toml:ro" -v "$PWD/README.md:/project/README.md:ro" \
    -v "$PWD/docker/wheels:/wheels:ro" -e "TORCH_SPEC=$TORCH_SPEC" -e "TORCH_INDEX_URL=$TORCH_INDEX_URL"
if [ -n "${PIP_CERT_FILE:-}" ]; then
    set -- "$@" -v "$PIP_CERT_FILE:/run/pip-cert:ro" -e PIP_CERT=/run/pip-cert
fi

# Only the project's metadata goes in: its dependencies are what is locked, not its code.
docker run --rm "$@" "$BASE_IMAGE" sh -c '
    set -e
    cp -r /project /tmp/project
    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check --find-links /wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC" /tmp/project >&2
    echo "# The versions the image installs (docker/lock.sh wrote this; do not edit by hand)."
    echo "# Resolved on $(date -u +%Y-%m-%d) for $(python3 --version) with $TORCH_SPEC (which is not listed here:"
    echo "# the build installs TORCH_SPEC). Regenerate with docker/lock.sh after changing the dependencies."
    /tmp/venv/bin/pip freeze --all --disable-pip-version-check --exclude pip --exclude simlink --exclude torch
' > docker/requirements.lock.tmp
mv docker/requirements.lock.tmp docker/requirements.lock
echo "wrote docker/requirements.lock ($(grep -vc '^#' docker/requirements.lock) packages)"
