# dex-age service: uvicorn on port 8000 serving the model shipped in models/.
#   docker build -t dex-age .                                   full: ONNX Runtime and TensorFlow (SavedModel)
#   docker build --build-arg FLAVOR=slim -t dex-age:slim .      slim: ONNX Runtime only, no TensorFlow
ARG FLAVOR=full

FROM python:3.11-slim AS deps-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /srv/dex-age
# Dependencies first, in their own layers, read from pyproject.toml (the one list of them):
# everything but TensorFlow and Keras here, which only the SavedModel runtime needs.
COPY pyproject.toml .
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith(('tensorflow', 'keras'))))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

FROM deps-slim AS deps-full
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if d.startswith(('tensorflow', 'keras'))))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

FROM deps-${FLAVOR}
# The code and the shipped model, owned by root and read-only to the service's user.
COPY model_training/ model_training/
COPY app/ app/
COPY models/ models/
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin dex \
    && chmod -R a-w /srv/dex-age

USER dex
ENV MODEL_DIR=/srv/dex-age/models/dex-age \
    MODEL_RUNTIME=onnx \
    HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)" || exit 1
CMD ["python", "-m", "app"]
