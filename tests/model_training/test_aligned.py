"""The aligned-face cache: each source's faces through the service's detector and alignment."""

import subprocess
import sys

from app.faces.crop import read_rgb
from harness.data import aaf_folder
from model_training import aligned
from model_training.dataset import index_folder


def test_each_source_is_aligned_once_and_a_face_not_found_is_handled_per_source(utkface_dir, test_images, tmp_path):
    root = aaf_folder(utkface_dir, tmp_path / "aaf")
    (root / "aglined faces" / "09000A33.jpg").write_bytes((test_images / "cat.bmp").read_bytes())  # no face
    aaf = index_folder(tmp_path / "aaf", source="aaf")[0]
    template, out = aligned.load_template(), tmp_path / "faces"
    kept, counts = aligned.align_source("aaf", aaf, tmp_path / "aaf", out, template, threads=2, log=lambda m: None)
    assert counts == {"faces": 3, "kept": 2, "left_out": 1, "kept_unaligned": 0}  # the cat is left out
    assert [f.path for f in kept] == ["aaf/aglined faces/00012A25.jpg", "aaf/aglined faces/12000A07.jpg"]
    for face in kept:
        assert read_rgb(str(out / face.path)).shape == (aligned.SIZE, aligned.SIZE, 3)
    # a UTKFace "chip" without a face keeps its own framing (resized), counted
    chips = tmp_path / "utk"
    chips.mkdir()
    (chips / "30_0_0_cat.jpg.chip.jpg").write_bytes((test_images / "cat.bmp").read_bytes())
    faces = index_folder(chips)[0]
    kept, counts = aligned.align_source("utkface", faces, chips, out, template, log=lambda m: None)
    assert counts["kept_unaligned"] == 1 and kept[0].path == "utkface/30_0_0_cat.jpg.chip.jpg"


def test_training_without_the_cache_says_in_one_line_what_is_missing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "model_training", "train", "mobilenet_v2_two_sources", "--run-dir", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "data/faces/manifest.csv is missing" in line and "align-faces" in line and "get-aaf.sh" in line
    assert not (tmp_path / "run").exists()


def test_a_model_is_refused_a_template_its_aligned_faces_were_not_made_with(tmp_path):
    """Serving must align as training did (aligned.check_template, called by export and set-crop)."""
    import json

    import pytest

    from model_training.aligned import check_template, load_template

    template = load_template()
    manifest = tmp_path / "manifest.csv"
    check_template(manifest, template)  # no report: not an aligned cache, nothing to compare
    (tmp_path / "report.json").write_text(json.dumps({"utkface": {}, "template": template.to_dict()["template"]}))
    check_template(manifest, template)
    moved = type(template)(tuple((x + 0.01, y) for x, y in template.points))
    with pytest.raises(ValueError, match="aligned with another template"):
        check_template(manifest, moved)
