# The REST gateway (api/): FastAPI under uvicorn; no torch, no Triton. Non-root, and it writes
# only to ICH_DATA_DIR (the spool and results volume) and /tmp.
#   docker build -f k8s/images/gateway.Dockerfile -t ich-gateway:0.1.0 .

FROM python:3.11.11-slim-bookworm@sha256:614c8691ab74150465ec9123378cd4dde7a6e57be9e558c3108df40664667a4c AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ich/venv
WORKDIR /src
COPY k8s/images/constraints.txt ./
COPY pyproject.toml README.md ./
COPY ich ./ich
COPY api ./api
COPY export ./export
# The serve extra also brings the tritonserver that `ich serve` can start: the gateway never does.
RUN /opt/ich/venv/bin/pip install --constraint constraints.txt ".[serve]" \
 && /opt/ich/venv/bin/pip uninstall --yes nvidia-pytriton

FROM python:3.11.11-slim-bookworm@sha256:614c8691ab74150465ec9123378cd4dde7a6e57be9e558c3108df40664667a4c
RUN groupadd --system --gid 10001 ich \
 && useradd --system --uid 10001 --gid ich --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ich \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/ich
COPY --from=build /opt/ich/venv /opt/ich/venv
COPY k8s/images/gateway-logging.json /etc/ich/logging.json
ENV PATH=/opt/ich/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ICH_DATA_DIR=/var/lib/ich
USER 10001:10001
EXPOSE 8000
# uvicorn rather than `ich serve --no-triton`, which makes and prints a local API key on every
# start with an empty data folder; JSON log lines as `ich serve` writes them (logging.json).
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--log-config", "/etc/ich/logging.json", "--no-access-log", "--timeout-graceful-shutdown", "20"]
