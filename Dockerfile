# The allpfit-etl code location: serves its definitions over gRPC (`dagster code-server start`).
# The same image runs dagster-webserver, dagster-daemon and `allpfit-etl init` (docker-compose.yml),
# so the Dagster versions of all four always match. docs/deployment.md tells how to build and run it.

# --- build: the wheel, as `pip wheel .` makes it for users (sql/ and the prompts inside) ---------
FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY allpfit_etl ./allpfit_etl
COPY sql ./sql
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- run: the installed wheel only, no checkout ------------------------------------------------
FROM python:3.12-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    ALLPFIT_HOME=/opt/dagster/allpfit
RUN useradd --create-home --uid 10001 --user-group dagster \
    && mkdir -p /opt/dagster/dagster_home /opt/dagster/allpfit /opt/dagster/app \
    && chown -R dagster:dagster /opt/dagster
# The wheel pins Dagster (==) and bounds every other dependency; the image resolves them once, at build.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/allpfit_etl-*.whl
COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/dagster_home/
# Numeric, so Kubernetes can check runAsNonRoot without reading the image's /etc/passwd.
USER 10001:10001
# An empty working directory: the code comes from site-packages, never from a checkout.
WORKDIR /opt/dagster/app
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "allpfit_etl.definitions", "--location-name", "allpfit_etl"]
