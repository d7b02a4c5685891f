# The media_assets code location for Kubernetes: the user-code deployment serves it over gRPC
# (`dagster api grpc`, port 4000), and the K8sRunLauncher runs each batch in a pod of this
# image (k8s_job_executor: each step too). See README "Deploy" and deploy/helm/values.yaml.
#   docker build -t registry.example.com/media-assets:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    MEDIA_ASSETS_POLICY=/opt/media_assets/policy.yaml

WORKDIR /opt/media_assets
COPY pyproject.toml ./
COPY media_assets ./media_assets
# k8s: K8sRunLauncher / k8s_job_executor; celery: the same image can serve as a Celery worker.
RUN pip install ".[k8s,celery]"
COPY policy.yaml ./
COPY deploy/k8s-lane-resources.yaml ./deploy/

RUN useradd --uid 10001 --user-group --create-home media \
    && mkdir -p "$DAGSTER_HOME" /data \
    && chown media:media "$DAGSTER_HOME" /data
USER 10001

EXPOSE 4000
CMD ["dagster", "api", "grpc", "-m", "media_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
