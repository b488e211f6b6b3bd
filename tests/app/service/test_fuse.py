"""POST /fuse: one answer for one person from the distributions of their frames."""

from __future__ import annotations

import pytest


def test_fuse_gives_one_answer_from_a_persons_distributions(client, test_images):
    with (test_images / "face.jpg").open("rb") as fh:
        faces = client.post("/predict", files={"file": ("face.jpg", fh, "image/jpeg")}).json()["faces"]
    one = faces[0]["distribution"]["probabilities"]
    alone = client.post("/fuse", json={"distributions": [one]})
    assert alone.status_code == 200, alone.text
    body = alone.json()
    assert body["frames"] == 1 and body["effective_frames"] == 1
    assert body["age"] == pytest.approx(faces[0]["age"], abs=0.01)
    # the distribution travels rounded in JSON, so the refused mass may differ in its 4th decimal
    got, want = body["age_interval"], faces[0]["age_interval"]
    assert (got["low"], got["high"]) == (want["low"], want["high"]) and got["mass"] == pytest.approx(
        want["mass"], abs=2e-4
    )
    # the tiny model has no fitted correlation: ρ = 1, frames that agree make it no surer
    same = client.post("/fuse", json={"distributions": [one] * 5}).json()
    assert same["correlation"] == 1.0 and same["age_std"] == pytest.approx(body["age_std"], abs=0.01)


@pytest.mark.parametrize(
    "body",
    [
        '{"distributions": []}',
        '{"distributions": [[0.5, 0.5]]}',
        '{"distributions": [[' + ",".join(["-1"] + ["0.02"] * 100) + "]]}",
        '{"distributions": [[' + ",".join(["NaN"] + ["0.01"] * 100) + "]]}",
        '{"distributions": [[' + ",".join(["0"] * 101) + "]]}",
        '{"distributions": [[0.5, 0.5], [' + ",".join(["0.01"] * 101) + "]]}",
        '{"distributions": [[' + ",".join(["1e308"] * 101) + "]]}",
        '{"distributions": "many"}',
        "not json",
    ],
)
def test_fuse_refuses_what_is_not_distributions_with_a_clear_422(client, body):
    response = client.post("/fuse", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request" and response.json()["detail"]


def test_fuse_is_bounded_by_video_max_frames(client):
    row = [1 / 101] * 101
    response = client.post("/fuse", json={"distributions": [row] * 2401})
    assert response.status_code == 422 and "VIDEO_MAX_FRAMES" in response.json()["detail"]
