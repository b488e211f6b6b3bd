"""Serving benchmark: pipeline stages in process, the real service over HTTP, start time and size.

Prints one markdown table and the target ratios. Loopback only, a fixed number of requests.
Usage: python scripts/bench.py [--model-dir DIR] [--runtime tensorflow|onnx] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from app import imaging
from app.config import SHIPPED_MODEL, Settings
from app.estimator import Estimator
from app.model.model_dir import ONNX, AgeModel, onnx_session
from harness.loadgen import REPO, load, rss_mb, start_service, stop, wait_ready
from harness.photos import median_ms, photos
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST, read_manifest


def stages(estimator: Estimator, data: bytes, detect: bool, repeats: int) -> dict:
    rgb = imaging.decode(data, estimator.max_pixels)
    boxes, _ = estimator.detections(rgb, detect, 10)
    row = {
        "pixels": f"{rgb.shape[1]}×{rgb.shape[0]}",
        "faces": len(boxes),
        "decode": median_ms(lambda: imaging.decode(data, estimator.max_pixels), repeats),
        "detect": median_ms(lambda: estimator.detections(rgb, detect, 10), repeats) if detect else 0.0,
    }
    crops = estimator.crops(rgb, boxes, detect) if boxes else None
    row["crop"] = median_ms(lambda: estimator.crops(rgb, boxes, detect), repeats) if boxes else 0.0
    row["forward"] = median_ms(lambda: estimator.model.predict(crops), repeats) if boxes else 0.0
    row["pipeline"] = median_ms(lambda: estimator.prediction(data, detect), repeats)
    return row


def forward(model: AgeModel, repeats: int) -> dict:
    s = model.input_size
    one, four = np.zeros((1, s, s, 3), np.float32), np.zeros((4, s, s, 3), np.float32)
    model.predict(four)
    return {
        "batch1": median_ms(lambda: model.predict(one), repeats),
        "batch4": median_ms(lambda: model.predict(four), repeats),
    }


def bare_onnx(model_dir: Path, size: int, threads: int | None, repeats: int) -> float:
    session = onnx_session(model_dir / ONNX, threads)
    x = np.zeros((1, size, size, 3), np.float32)
    session.run(None, {"image": x})
    return median_ms(lambda: session.run(None, {"image": x}), repeats)


def docker_image_mb() -> str:
    try:
        out = subprocess.run(
            ["docker", "image", "inspect", "dex-age:latest", "--format", "{{.Size}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return f"{int(out.stdout.strip()) / 1e6:.0f} MB" if out.returncode == 0 else "not built"
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return "docker unavailable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--runtime", default=Settings().model_runtime, choices=["tensorflow", "onnx"])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and requests")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    repeats, scale = (5, 0.25) if args.quick else (20, 1.0)
    settings = Settings()
    threads = settings.model_threads

    images = photos()
    estimator = Estimator.from_settings(settings, args.model_dir, args.runtime)
    model = estimator.model
    chips = [(DEFAULT_DATA_ROOT / f.path).read_bytes() for f in read_manifest(REPO / DEFAULT_MANIFEST, "test")[:20]]
    rows = {name: stages(estimator, data, True, repeats) for name, data in images.items()}
    rows["UTKFace chip, detect=false"] = stages(estimator, chips[0], False, repeats)
    runtimes = {
        rt: forward(AgeModel(args.model_dir, runtime=rt, threads=threads), repeats) for rt in ("tensorflow", "onnx")
    }
    bare = bare_onnx(args.model_dir, model.input_size, threads, repeats)

    log = Path(tempfile.mkdtemp()) / "service.log"
    service = start_service(args.model_dir, log, MODEL_RUNTIME=args.runtime, LOG_LEVEL="warning")
    http = {}
    try:
        wait_ready(service)
        small, big = images["canvas-640x480.jpg"], images["canvas-1920x1080.jpg"]
        load(service.url, small, 10, 2)
        rss_warm = rss_mb(service.process.pid)
        for c, n in ((1, 60), (4, 120), (16, 240)):
            http[f"640×480, concurrency {c}"] = load(service.url, small, max(int(n * scale), 2 * c), c)
        http["1920×1080, concurrency 1"] = load(service.url, big, max(int(40 * scale), 4), 1)
        load(service.url, chips[0], int(2000 * scale), 4, params={"detect": "false"})
        rss_after = rss_mb(service.process.pid)
    finally:
        stop(service)

    print(f"## dex-age serving benchmark — {model.card['name']} {model.card['version']}, runtime {args.runtime}\n")
    print("| image | pixels | faces | decode ms | detect ms | crop+resize ms | forward ms | pipeline ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['pixels']} | {r['faces']} | {r['decode']:.1f} | {r['detect']:.1f} | {r['crop']:.1f} "
            f"| {r['forward']:.1f} | {r['pipeline']:.1f} |"
        )
    print(f"\n| model forward ({model.input_size} px) | batch 1 ms | batch 4 ms |\n|---|---:|---:|")
    for rt, f in runtimes.items():
        print(f"| {rt} | {f['batch1']:.1f} | {f['batch4']:.1f} |")
    print(f"| bare ONNX Runtime session | {bare:.1f} | |")
    print(
        "\n| HTTP load | requests | req/s | p50 ms | p95 ms | p99 ms | errors | the service's own pipeline, p50 ms |"
        "\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, h in http.items():
        errors = h["server_errors"] + h["transport_errors"] + sum(n for s, n in h["statuses"].items() if s != 200)
        own = "–" if h["server_pipeline_p50_ms"] is None else f"{h['server_pipeline_p50_ms']:.0f}"  # no answer
        print(
            f"| {name} | {h['requests']} | {h['rps']:.1f} | {h['p50_ms']:.0f} | {h['p95_ms']:.0f} "
            f"| {h['p99_ms']:.0f} | {errors} | {own} |"
        )
    print(
        f"\nstart → /ready {service.seconds_to_ready:.1f} s; resident memory {rss_warm:.0f} MB after warm-up, "
        f"{rss_after:.0f} MB after {int(2000 * scale)} more requests; Docker image {docker_image_mb()}"
    )
    one = http["640×480, concurrency 1"]
    ratios = {
        "HTTP p50 (c=1) / in-process pipeline, 640×480 (≤ 1.15)": one["p50_ms"]
        / rows["canvas-640x480.jpg"]["pipeline"],
        # the same, against the pipeline time the service reported for those very requests: what
        # HTTP adds, without the drift of the machine's speed between the two measurements
        "HTTP p50 (c=1) / the service's own pipeline p50, same requests, 640×480": one["p50_ms"]
        / (one["server_pipeline_p50_ms"] or float("nan")),
        "req/s c=4 / req/s c=1 (≥ 1.6)": http["640×480, concurrency 4"]["rps"] / one["rps"],
        "onnx forward / bare ONNX Runtime, batch 1 (≤ 1.2)": runtimes["onnx"]["batch1"] / bare,
        "HTTP p50 1920×1080 / 640×480 (≤ 1.5)": http["1920×1080, concurrency 1"]["p50_ms"] / one["p50_ms"],
    }
    print("\n| ratio (aimed at) | value |\n|---|---:|")
    for name, value in ratios.items():
        print(f"| {name} | {value:.2f} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"stages": rows, "forward": runtimes, "bare_onnx": bare, "http": http, "ratios": ratios},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
