"""Health, readiness, the model card, the docs, and startup failures."""

import json
import shutil

import pytest

from harness.loadgen import failed_start, start_service


def test_health(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_says_ready_once_loaded(client, service):
    assert service.ready_statuses[-1] == 200
    assert client.get("/ready").json()["status"] == "ready"


def test_model_card_has_the_contract_and_the_runtime(client, tiny_model_dir):
    card = client.get("/model").json()
    on_disk = json.loads((tiny_model_dir / "model.json").read_text())
    assert {k: card[k] for k in on_disk} == on_disk
    assert card["runtime"]["runtime"] == "onnx"  # the default runtime
    assert card["runtime"]["precision"] == ("int8" if on_disk["int8"]["passed"] else "float")  # where it passed


def test_openapi_documents_the_response(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    ok = schema["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/PredictResponse")
    assert {"FaceOut", "AgeInterval", "Distribution", "ErrorResponse"} <= set(schema["components"]["schemas"])


def test_missing_model_dir_stops_startup_with_one_clear_line(tmp_path):
    missing = tmp_path / "no-such-model"
    code, log = failed_start(missing, tmp_path)
    assert code == 1
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and str(missing) in errors[0] and "does not exist" in errors[0]
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("runtime", "precision", "file"),
    [
        ("onnx", "float", "model.onnx"),
        ("onnx", "auto", "model.int8.onnx"),
        ("tensorflow", "auto", "saved_model/saved_model.pb"),
    ],
)
def test_broken_model_dir_stops_startup(tmp_path, tiny_model_dir, runtime, precision, file):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    card = json.loads((broken / "model.json").read_text())
    (broken / "model.json").write_text(json.dumps({**card, "int8": {**card["int8"], "passed": True}}))
    (broken / file).write_bytes(b"not a model")
    code, log = failed_start(broken, tmp_path, MODEL_RUNTIME=runtime, MODEL_PRECISION=precision)
    assert code == 1
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and str(broken) in errors[0] and f"cannot load {file.split('/')[0]}" in errors[0]
    assert "Traceback" not in log


def test_tensorflow_runtime_is_503_while_loading_then_serves_the_same_answer(
    client, tiny_model_dir, test_images, tmp_path
):
    """The TensorFlow runtime takes seconds to import: long enough to see /ready answer 503 while it loads
    (the tiny ONNX model can be ready before the first poll)."""
    import httpx

    from app.estimator import Estimator
    from harness.loadgen import stop, wait_ready

    tf = start_service(tiny_model_dir, tmp_path / "tf.log", MODEL_RUNTIME="tensorflow", MODEL_THREADS="1")
    try:
        wait_ready(tf)
        assert tf.ready_statuses[0] == 503 and tf.ready_statuses[-1] == 200
        assert httpx.get(tf.url + "/model").json()["runtime"]["runtime"] == "tensorflow"
        files = {"file": ("g.bmp", (test_images / "grace_hopper.bmp").read_bytes())}
        got = httpx.post(tf.url + "/predict", files=files, timeout=60).json()["faces"]
        want = Estimator.from_dir(tiny_model_dir, runtime="onnx", model_precision="float").answer(
            (test_images / "grace_hopper.bmp").read_bytes()
        )["faces"]  # the float ONNX graph: the default may be the int8 one
        assert [f["box"] for f in got] == [f["box"] for f in want]
        assert abs(got[0]["age"] - want[0]["age"]) < 0.01
    finally:
        stop(tf)


def test_a_model_without_a_crop_for_the_detector_refuses_to_start(tiny_model_dir, tmp_path):
    haar_only = tmp_path / "haar-only"
    shutil.copytree(tiny_model_dir, haar_only)
    card = json.loads((haar_only / "model.json").read_text())
    card["crops"] = {"haar": card["crops"]["haar"]}
    (haar_only / "model.json").write_text(json.dumps(card))
    code, log = failed_start(haar_only, tmp_path)  # DETECTOR defaults to yunet: no template, no start
    assert code == 1
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "has no crop for the 'yunet' detector (it has: haar)" in errors[0]
    assert "Traceback" not in log


def test_detector_switch_serves_haar_with_its_own_crop(client, tiny_model_dir, test_images, tmp_path):
    import httpx

    from harness.loadgen import stop, wait_ready

    default = client.get("/model").json()["runtime"]["detector"]
    assert default["name"] == "yunet" and default["sha256"] == (
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    )
    haar = start_service(tiny_model_dir, tmp_path / "haar.log", DETECTOR="haar")
    try:
        wait_ready(haar)
        assert httpx.get(haar.url + "/model").json()["runtime"]["detector"]["name"] == "haar"
        files = {"file": ("face.jpg", (test_images / "face.jpg").read_bytes())}
        faces = httpx.post(haar.url + "/predict", files=files, timeout=60).json()["faces"]
        assert len(faces) == 4
        assert max(f["detection_score"] for f in faces) > 1  # the cascade's level weight, not a probability
        assert all(f["landmarks"] is None for f in faces)  # a box-only detector
    finally:
        stop(haar)
