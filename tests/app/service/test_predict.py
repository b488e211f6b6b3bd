"""Predictions on real photos through the real HTTP service."""

import numpy as np
import pytest


def _post(client, path, name=None, data=None, **params):
    content = data if data is not None else path.read_bytes()
    return client.post("/predict", params=params, files={"file": (name or path.name, content)})


def _check_face(face, width, height):
    box = face["box"]
    assert box["x"] >= 0 and box["y"] >= 0 and box["width"] > 0 and box["height"] > 0
    assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height
    ages = np.array(face["distribution"]["ages"], dtype=float)
    p = np.array(face["distribution"]["probabilities"])
    assert p.sum() == pytest.approx(1, abs=1e-4)
    assert face["age"] == pytest.approx(float(p @ ages), abs=0.01)
    assert face["age_std"] == pytest.approx(float(np.sqrt(p @ (ages - p @ ages) ** 2)), abs=0.01)
    interval = face["age_interval"]
    assert interval["low"] <= interval["high"] and interval["mass"] >= 0.9 - 1e-6
    assert p[(ages >= interval["low"]) & (ages <= interval["high"])].sum() == pytest.approx(interval["mass"], abs=1e-3)


def test_four_faces(client, test_images):
    r = _post(client, test_images / "face.jpg")
    assert r.status_code == 200
    body = r.json()
    assert body["image"] == {"width": 512, "height": 355}
    assert body["model"]["version"] == "0.0.0-test"
    assert len(body["faces"]) == 4
    for face in body["faces"]:
        _check_face(face, 512, 355)
        assert 0.5 <= face["detection_score"] <= 1  # YuNet's score, above MIN_FACE_CONFIDENCE
        box, points = face["box"], face["landmarks"]
        assert list(points) == ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"]
        for point in points.values():  # in image pixels, inside the face's box
            assert box["x"] <= point["x"] <= box["x"] + box["width"]
            assert box["y"] <= point["y"] <= box["y"] + box["height"]
        assert points["right_eye"]["x"] < points["left_eye"]["x"]  # the person's right eye: the image's left
    areas = [f["box"]["width"] * f["box"]["height"] for f in body["faces"]]
    assert areas == sorted(areas, reverse=True)
    assert set(body["timings_ms"]) == {"decode", "detect", "infer", "total"}


def test_one_face(client, test_images):
    body = _post(client, test_images / "grace_hopper.bmp").json()
    assert len(body["faces"]) == 1
    _check_face(body["faces"][0], body["image"]["width"], body["image"]["height"])


def test_no_face_is_an_empty_list(client, test_images):
    r = _post(client, test_images / "cat.bmp")
    assert r.status_code == 200 and r.json()["faces"] == []


def test_detect_false_takes_the_whole_image_as_the_crop(client, utkface_dir):
    chip = sorted(utkface_dir.iterdir())[0]
    body = _post(client, chip, detect="false").json()
    (face,) = body["faces"]
    assert face["box"] == {"x": 0, "y": 0, "width": 200, "height": 200}
    assert face["detection_score"] is None and face["landmarks"] is None
    _check_face(face, 200, 200)


def test_detect_false_matches_the_evaluation_path(client, utkface_dir, tiny_model_dir):
    """The service's detect=false answer is the model directory's answer on the chip (one crop code)."""
    from app.faces.crop import crop_whole, read_rgb
    from app.model.model_dir import AgeModel

    chip = sorted(utkface_dir.iterdir())[5]
    model = AgeModel(tiny_model_dir)
    _, expected = model.predict(crop_whole(read_rgb(str(chip)), model.input_size)[None])
    face = _post(client, chip, detect="false").json()["faces"][0]
    assert face["age"] == pytest.approx(float(expected[0]), abs=0.01)


def test_max_faces_keeps_the_largest(client, test_images):
    every = _post(client, test_images / "face.jpg").json()["faces"]
    two = _post(client, test_images / "face.jpg", max_faces=2).json()["faces"]
    assert [f["box"] for f in two] == [f["box"] for f in every[:2]]


def test_distribution_can_be_left_out(client, test_images):
    body = _post(client, test_images / "grace_hopper.bmp", include_distribution="false").json()
    assert body["faces"][0]["distribution"] is None
    assert body["faces"][0]["age"] > 0


def test_png_upload_and_exif_rotation(client, test_images, tmp_path):
    from PIL import Image

    image = Image.open(test_images / "grace_hopper.bmp").convert("RGB")
    rotated = image.transpose(Image.Transpose.ROTATE_270)  # stored on its side; EXIF 8 turns it back
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "rotated.jpg"
    rotated.save(path, exif=exif, quality=95)
    body = _post(client, path).json()
    assert body["image"] == {"width": image.width, "height": image.height}
    assert len(body["faces"]) == 1
    image.save(tmp_path / "g.png")
    assert len(_post(client, tmp_path / "g.png").json()["faces"]) == 1


def test_tta_flip_serves_the_mirror_averaged_distribution(tiny_model_dir, test_images):
    from app import imaging
    from app.config import Settings
    from app.estimator import Estimator

    data = (test_images / "grace_hopper.bmp").read_bytes()
    plain = Estimator.from_settings(Settings(), tiny_model_dir, "onnx")
    flipped = Estimator.from_settings(Settings(tta="flip"), tiny_model_dir, "onnx")
    rgb = imaging.decode(data, 10**8)
    boxes, _ = plain.detections(rgb, True, 10)
    want, _ = plain.model.predict(plain.crops(rgb, boxes, True), flip=True)
    got = flipped.prediction(data).faces[0].probabilities
    np.testing.assert_allclose(got, want[0], atol=1e-6)
    assert not np.allclose(plain.prediction(data).faces[0].probabilities, got, atol=1e-4)
