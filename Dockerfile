# dex-age service: uvicorn on port 8000 serving the model shipped in models/, on ONNX Runtime.
#   docker build -t dex-age .                                     the serving install (`pip install .`)
#   docker build --build-arg EXTRAS=tensorflow -t dex-age:tensorflow .   adds the SavedModel runtime
#   docker build --build-arg EXTRAS=ray -t dex-age:ray .          adds Ray, for batch scoring (deploy/ray/)
# The image holds the library and the service (app/) and the shipped models: no training code.
FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /srv/dex-age
# Dependencies first, in their own layer, read from pyproject.toml (the one list of them).
COPY pyproject.toml .
RUN python -c "import tomllib, sys; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [d for e in sys.argv[1].split(',') if e for d in p['optional-dependencies'][e]]; \
print('\n'.join(p['dependencies'] + extras))" "$EXTRAS" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && if echo ",$EXTRAS," | grep -q ",ray,"; then \
         apt-get update -qq && apt-get install -y -qq --no-install-recommends wget && rm -rf /var/lib/apt/lists/*; fi
# (KubeRay's probes call wget.) The package itself (no dependencies left to fetch), then the shipped models; all read-only to the service's user.
COPY README.md .
COPY app/ app/
RUN pip install --no-deps . && rm -rf build ./*.egg-info
COPY models/ models/
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin dex \
    && chmod -R a-w /srv/dex-age

USER dex
ENV MODEL_DIR=/srv/dex-age/models/dex-age \
    HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)" || exit 1
CMD ["python", "-m", "app"]
