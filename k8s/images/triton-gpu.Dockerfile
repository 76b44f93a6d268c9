# Triton on NVIDIA GPUs: the NGC image, whose pytorch_libtorch, onnxruntime and tensorrt
# backends load the exported detector, plus what the python steps (ich_preprocess,
# ich_postprocess) need: Python 3.11 (the image's own Python is 3.10), a virtualenv with the
# project, and the python backend and stub for 3.11 that nvidia-pytriton bundles for this very
# Triton release (2.51, the 24.10 image). The tag is an exact release; no digest is pinned here
# because none could be verified from this repository (pin yours: see docs/deploy.md).
#   docker build -f k8s/images/triton-gpu.Dockerfile -t ich-triton-gpu:0.1.0 .

FROM nvcr.io/nvidia/tritonserver:24.10-py3 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/ich/venv \
 && /opt/ich/venv/bin/python -m pip install "pip==24.3.1"
WORKDIR /src
COPY k8s/images/constraints.txt ./
COPY pyproject.toml README.md ./
COPY ich ./ich
COPY api ./api
COPY export ./export
# The python steps are torch-free; the serve extra brings nvidia-pytriton (its python backend).
RUN /opt/ich/venv/bin/pip install --constraint constraints.txt ".[serve]"

FROM nvcr.io/nvidia/tritonserver:24.10-py3
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 libpython3.11 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/ich/venv /opt/ich/venv
# NGC's python backend is built for Python 3.10: the bundled 3.11 one takes its place, linked
# as `ich triton` links it (the stub finds its libraries relative to where it really lies).
RUN rm -rf /opt/tritonserver/backends/python \
 && /opt/ich/venv/bin/python -c "from pathlib import Path; \
from ich.serving.server import backend_directory; backend_directory(Path('/opt/tritonserver'))"
ENV PATH=/opt/ich/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 1000:1000
EXPOSE 8000 8001 8002
# The image's entrypoint (CUDA compatibility checks) runs the command the Deployment gives.
CMD ["tritonserver", "--model-repository=/models"]
