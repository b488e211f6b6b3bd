"""scripts/loadgen.py against the real service (tiny model): what the bench's HTTP rows rest on."""

from __future__ import annotations

from harness.loadgen import load


def test_load_reports_the_services_own_pipeline_time_beside_the_clients(service, test_images):
    stats = load(service.url, (test_images / "face.jpg").read_bytes(), requests=6, concurrency=2)
    assert stats["statuses"] == {200: 6} and stats["server_errors"] == stats["transport_errors"] == 0
    # each answer's pipeline time is part of the latency the client saw, so its median cannot exceed it
    assert 0 < stats["server_pipeline_p50_ms"] <= stats["p50_ms"]


def test_load_has_no_pipeline_time_when_no_answer_succeeded(service):
    stats = load(service.url, b"not an image", requests=2, concurrency=1)
    assert 200 not in stats["statuses"] and sum(stats["statuses"].values()) == 2
    assert stats["server_pipeline_p50_ms"] is None
