#!/usr/bin/env bash
# Build and start the stack with Docker Compose, wait until healthy, post a real photo, stop;
# for both images: the default (the serving install, ONNX Runtime) and the one with TensorFlow too.
# On this sandbox run ../shared/tools/docker-here.sh first (it starts a Docker engine).
# Usage: scripts/compose_smoke.sh [default|tensorflow|both|scale] [image]   (default both, ../shared/data/test-images/face.jpg)
#   scale: two replicas of the default image on a port range, and one stopped with a drain
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
image=${2:-../shared/data/test-images/face.jpg}
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi

smoke() {  # smoke NAME TAG COMPOSE-FILE...
  local name=$1 tag=$2; shift 2
  local files=() f
  for f in "$@"; do files+=(-f "$f"); done
  local stack=("${compose[@]}" "${files[@]}")
  trap '"${stack[@]}" down >/dev/null 2>&1 || true' RETURN
  echo "== $name image ($tag)"
  "${stack[@]}" build
  "${stack[@]}" up -d
  local container health
  container=$("${stack[@]}" ps -q api)
  echo "waiting for the container's healthcheck (GET /ready) ..."
  for _ in $(seq 180); do
    health=$(docker inspect --format '{{.State.Health.Status}}' "$container")
    [ "$health" = healthy ] && break
    sleep 1
  done
  echo "container health: $health"
  # start to ready: from the container's start to the service's "ready" log line (engine timestamps)
  python3 - "$(docker inspect --format '{{.State.StartedAt}}' "$container")" \
    "$(docker logs -t "$container" 2>&1 | grep -m1 'warm: ready' | cut -d' ' -f1)" <<'PY'
import sys
from datetime import datetime
started, ready = (datetime.fromisoformat(t[:26].rstrip("Z") + "+00:00") for t in sys.argv[1:])
print(f"ready {(ready - started).total_seconds():.1f} s after the container started")
PY
  echo "runtime: $(curl -fsS http://127.0.0.1:8000/model | python3 -c 'import json, sys; print(json.load(sys.stdin)["runtime"])')"
  echo "POST /predict $image"
  local response
  response=$(mktemp)
  curl -fsS -F "file=@$image" "http://127.0.0.1:8000/predict?include_distribution=false" -o "$response"
  python3 - "$response" <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
print("model", body["model"], "image", body["image"], "timings_ms", body["timings_ms"])
for f in body["faces"]:
    print(f"  face {f['box']}: age {f['age']:.1f} ± {f['age_std']:.1f}, interval {f['age_interval']}")
print(len(body["faces"]), "faces")
PY
  rm -f "$response"
  echo "image size: $(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
}

scale() {  # two replicas of the default image on a host port range, each answering; then a drained stop
  local stack=("${compose[@]}" -f docker-compose.yml)
  trap '"${stack[@]}" down >/dev/null 2>&1 || true' RETURN
  echo "== two replicas (API_PORTS=8000-8001, --scale api=2)"
  API_PORTS=8000-8001 "${stack[@]}" up -d --scale api=2
  local port
  for port in 8000 8001; do
    for _ in $(seq 1800); do curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null && break; sleep 0.1; done
    echo "port $port: $(curl -fsS -F "file=@$image" "http://127.0.0.1:$port/predict?include_distribution=false" \
      | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["faces"]), "faces")')"
  done
  local first start
  first=$("${stack[@]}" ps -q api | head -1)
  start=$SECONDS
  docker stop "$first" >/dev/null
  echo "one replica stopped (SIGTERM, drained) in $((SECONDS - start)) s, exit code $(docker inspect --format '{{.State.ExitCode}}' "$first")"
}

case $which in
  default) smoke default dex-age:latest docker-compose.yml ;;
  tensorflow) smoke tensorflow dex-age:tensorflow docker-compose.yml docker-compose.tensorflow.yml ;;
  scale) scale ;;
  both) smoke default dex-age:latest docker-compose.yml
        smoke tensorflow dex-age:tensorflow docker-compose.yml docker-compose.tensorflow.yml ;;
  *) echo "usage: $0 [default|tensorflow|both|scale] [image]" >&2; exit 2 ;;
esac
