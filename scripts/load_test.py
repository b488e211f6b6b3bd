"""Load test: start the service on loopback, send a few thousand requests, report the figures.

Bounded in count (--requests) and concurrency; exits 1 on any 5xx or transport error.
Usage: python scripts/load_test.py [--model-dir DIR] [--requests 3000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from app.config import SHIPPED_MODEL
from harness.loadgen import load, rss_mb, start_service, stop, wait_ready
from model_training.dataset import TEST_IMAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--image", type=Path, default=TEST_IMAGES / "grace_hopper.bmp")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runtime", default="tensorflow", choices=["tensorflow", "onnx"])
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp()) / "service.log"
    service = start_service(args.model_dir, log, MODEL_RUNTIME=args.runtime, LOG_LEVEL="warning")
    try:
        wait_ready(service)
        image = args.image.read_bytes()
        load(service.url, image, 20, 2)  # warm-up
        before = rss_mb(service.process.pid)
        stats = load(service.url, image, args.requests, args.concurrency)
        stats.update(rss_before_mb=round(before, 1), rss_after_mb=round(rss_mb(service.process.pid), 1))
    finally:
        stop(service)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()}, indent=2))
    sys.exit(1 if stats["server_errors"] or stats["transport_errors"] else 0)


if __name__ == "__main__":
    main()
