# The Triton model repository, written by `ich export` from the shipped model, as an image whose
# only job is to be copied into the Triton pod by an init container. One image per target:
#   docker build -f k8s/images/model-repository.Dockerfile --build-arg TARGET=cpu \
#     -t ich-model-repository:0.1.0-cpu .
#   docker build -f k8s/images/model-repository.Dockerfile --build-arg TARGET=gpu \
#     [--build-arg FORMAT=onnx] -t ich-model-repository:0.1.0-gpu .
# A TensorRT engine belongs to the GPU model and TensorRT version it was built with: build it on
# a node of the GPU pool inside the Triton image (ich export --format tensorrt --target gpu
# --repository DIR) and give that folder as the `exported` stage:
#   docker buildx build --build-context exported=DIR -f k8s/images/model-repository.Dockerfile ...

FROM python:3.11.11-slim-bookworm@sha256:614c8691ab74150465ec9123378cd4dde7a6e57be9e558c3108df40664667a4c AS exporter
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ich/venv
WORKDIR /src
COPY k8s/images/constraints.txt ./
RUN /opt/ich/venv/bin/pip install --constraint constraints.txt \
      --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
      torch torchvision
COPY pyproject.toml README.md ./
COPY ich ./ich
COPY api ./api
COPY export ./export
RUN /opt/ich/venv/bin/pip install --constraint constraints.txt ".[model,export]"
ARG TARGET=cpu
ARG FORMAT=torchscript
RUN /opt/ich/venv/bin/ich export --target "$TARGET" --format "$FORMAT" --repository /out

FROM scratch AS exported
COPY --from=exporter /out/ /

FROM busybox:1.36.1@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662
COPY --from=exported / /models/
USER 65532:65532
# The init container of k8s/base/triton.yaml runs the same copy into the pod's volume.
CMD ["cp", "-R", "/models/.", "/repository/"]
