# Triton on CPU: the tritonserver bundled in nvidia-pytriton (python backend only) with the
# project's environment, as `ich triton` runs it (ich/serving/server.py), laid out as the NGC
# image is (/opt/tritonserver/bin, /opt/tritonserver/backends) so both overlays run the same
# command. The model repository comes from the model-repository image (an init container).
#   docker build -f k8s/images/triton-cpu.Dockerfile -t ich-triton-cpu:0.1.0 .

FROM python:3.11.11-slim-bookworm@sha256:614c8691ab74150465ec9123378cd4dde7a6e57be9e558c3108df40664667a4c AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ich/venv
WORKDIR /src
COPY k8s/images/constraints.txt ./
# torch's CPU build: the default wheels carry CUDA libraries (gigabytes) this image never loads.
RUN /opt/ich/venv/bin/pip install --constraint constraints.txt \
      --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
      torch torchvision
COPY pyproject.toml README.md ./
COPY ich ./ich
COPY api ./api
COPY export ./export
RUN /opt/ich/venv/bin/pip install --constraint constraints.txt ".[model,serve]"
# The backend folder `ich triton` assembles (the bundled python backend and the stub for this
# Python, linked where they lie), and the server binary on PATH.
RUN /opt/ich/venv/bin/python -c "from pathlib import Path; \
from ich.serving.server import backend_directory; backend_directory(Path('/opt/tritonserver'))" \
 && install -d /opt/tritonserver/bin \
 && ln -s "$(/opt/ich/venv/bin/python -c 'import pathlib, pytriton; \
print(pathlib.Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver")')" \
      /opt/tritonserver/bin/tritonserver

FROM python:3.11.11-slim-bookworm@sha256:614c8691ab74150465ec9123378cd4dde7a6e57be9e558c3108df40664667a4c
RUN groupadd --system --gid 10001 ich \
 && useradd --system --uid 10001 --gid ich --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ich
COPY --from=build /opt/ich/venv /opt/ich/venv
COPY --from=build /opt/tritonserver /opt/tritonserver
# The stub finds its Python through PATH (the virtualenv first) and libpython in /usr/local/lib;
# HOME is the writable /tmp of the pod (torch and matplotlib caches).
ENV PATH=/opt/ich/venv/bin:/opt/tritonserver/bin:$PATH \
    LD_LIBRARY_PATH=/usr/local/lib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 8000 8001 8002
# The Deployment gives the whole command (k8s/base/triton.yaml and the cpu overlay).
CMD ["tritonserver", "--model-repository=/models"]
