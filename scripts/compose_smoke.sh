#!/usr/bin/env bash
# Build and start the stack with Docker Compose, wait until healthy, post a real photo, stop.
# On this sandbox run ../shared/tools/docker-here.sh first (it starts a Docker engine).
# Usage: scripts/compose_smoke.sh [image]   (default ../shared/data/test-images/face.jpg)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-../shared/data/test-images/face.jpg}
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
cleanup() { "${compose[@]}" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

"${compose[@]}" build
"${compose[@]}" up -d
container=$("${compose[@]}" ps -q api)
echo "waiting for the container's healthcheck (GET /ready) ..."
start=$SECONDS
for _ in $(seq 180); do
  health=$(docker inspect --format '{{.State.Health.Status}}' "$container")
  [ "$health" = healthy ] && break
  sleep 1
done
echo "container health: $health after $((SECONDS - start)) s"
curl -fsS http://127.0.0.1:8000/ready; echo
echo "runtime: $(curl -fsS http://127.0.0.1:8000/model | python3 -c 'import json, sys; print(json.load(sys.stdin)["runtime"])')"
echo "POST /predict $image"
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
echo "image size: $(docker image inspect dex-age:latest --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
