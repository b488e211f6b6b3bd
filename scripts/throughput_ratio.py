"""Service throughput of several configurations, side by side: req/s at 4 clients on a 640×480
photo of four faces, each configuration a real service (`python -m app`), all started at once and
loaded in alternating rounds (this machine's speed drifts: only side by side is a ratio fair).

A configuration is MODEL_DIR[:float] (`:float` sets MODEL_PRECISION=float; without it the default,
int8 where the card says it passed). The first is the baseline of the printed ratios.

Usage: python scripts/throughput_ratio.py models/dex-mobilenet_v2:float models/dex-mobilenet_v2 models/dex-age
           [--rounds 3] [--requests 120]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from harness.loadgen import load, start_service, stop, wait_ready
from harness.photos import photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    image = photos()["canvas-640x480.jpg"]
    logs = Path(tempfile.mkdtemp())
    services = {}
    try:
        for i, config in enumerate(args.configs):
            model_dir, _, precision = config.partition(":")
            env = {"LOG_LEVEL": "warning", "MODEL_PRECISION": precision or "auto"}
            services[config] = start_service(Path(model_dir), logs / f"service-{i}.log", **env)
        for service in services.values():
            wait_ready(service)
            load(service.url, image, 10, 2)  # warm
        rps: dict[str, list[float]] = {c: [] for c in services}
        for _ in range(args.rounds):
            for config, service in services.items():
                result = load(service.url, image, args.requests, args.clients)
                assert result["statuses"] == {200: args.requests}, result["statuses"]
                rps[config].append(result["rps"])
    finally:
        for service in services.values():
            stop(service)
    base = args.configs[0]
    print(f"| configuration | req/s per round ({args.clients} clients, 640×480, 4 faces) | median | × {base} |")
    print("|---|---|---:|---:|")
    for config, values in rps.items():
        median = statistics.median(values)
        ratios = [v / b for v, b in zip(values, rps[base], strict=True)]
        print(
            f"| {config} | {' · '.join(f'{v:.1f}' for v in values)} | {median:.1f} | {statistics.median(ratios):.2f} |"
        )


if __name__ == "__main__":
    main()
