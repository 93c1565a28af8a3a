# syntax=docker/dockerfile:1
# One image for both CA4 services; the Deployment's command picks one:
#   python -m processor_api     (port 8080)     python -m metadata_worker     (port 8081)
# Built by `make ca4-image-build` (scripts/image_ca4.sh) as localhost/ca4-services:git-<commit>.
#
# Dependencies are installed from uv.lock exactly as the tests ran them; the runtime stage
# has no compiler, no uv, no pip cache, and runs as uid 10001 (the uid the manifests and
# the verification toolbox Job set).

# The base is pinned to a full Python release on Debian 12 (the development machines' OS);
# both stages use the same one, since the venv links to its interpreter. BASE_IMAGE swaps
# it where no registry serves it: the rehearsal cluster passes a Debian 12 image it makes
# with debootstrap (python3, python3-pip), so this one Dockerfile serves AWS and the rehearsal.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
# checkov cannot see through the ARG; its default is the pinned release tests/k8s/test_image.py checks
#checkov:skip=CKV_DOCKER_7:The base is ARG BASE_IMAGE, whose default is a pinned full release (python:3.11.14-slim-bookworm).
FROM ${BASE_IMAGE} AS build
ARG UV_VERSION=0.13.8
# PIP_BREAK_SYSTEM_PACKAGES: Debian's own Python (the rehearsal's base) refuses pip installs
# outside a venv (PEP 668); this pip only installs uv into the build stage, which is dropped.
# UV_SYSTEM_CERTS: uv trusts the base image's certificate store, as pip does, so a build
# behind a TLS-inspecting proxy needs only its CA in that store (the rehearsal lends the
# build machine's bundle to the RUN steps).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/ca4/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    UV_SYSTEM_CERTS=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# DocumentDB's TLS CA bundle, fetched before the code is copied so a code change reuses
# this layer. Terraform's mongo_uri names it relatively
# (tlsCAFile=global-bundle.pem), so it lives in the runtime WORKDIR, where every container
# of this image starts, the verification toolbox Job included. Pass
# DOCUMENTDB_CA_BUNDLE_SHA256 to pin the bundle's content as well.
# DOCUMENTDB_CA_BUNDLE_PEM_B64 (the bundle itself, base64) replaces the download where AWS
# cannot be reached: the rehearsal passes its database's own CA this way.
ARG DOCUMENTDB_CA_BUNDLE_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
ARG DOCUMENTDB_CA_BUNDLE_SHA256=""
ARG DOCUMENTDB_CA_BUNDLE_PEM_B64=""
COPY scripts/lib/fetch_ca_bundle.py /tmp/fetch_ca_bundle.py
RUN python3 /tmp/fetch_ca_bundle.py "${DOCUMENTDB_CA_BUNDLE_URL}" /src/global-bundle.pem "${DOCUMENTDB_CA_BUNDLE_SHA256}" "${DOCUMENTDB_CA_BUNDLE_PEM_B64}"

# the dependency layer changes only with the lock file
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY services ./services
RUN uv sync --frozen --no-default-groups --no-editable

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ca4-services" \
      org.opencontainers.image.description="CA4 Processor API and Metadata Worker" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ca4 \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ca4
COPY --from=build /opt/ca4/venv /opt/ca4/venv
COPY --from=build --chmod=0444 /src/global-bundle.pem /app/global-bundle.pem
ENV PATH=/opt/ca4/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 8080 8081
# Kubernetes probes /healthz on each service's own port; one image serves two ports, so a
# Docker HEALTHCHECK could only ever fit one of them.
HEALTHCHECK NONE
CMD ["python", "-m", "processor_api"]
