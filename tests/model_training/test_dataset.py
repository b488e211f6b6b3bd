import shutil
from collections import Counter, defaultdict
from pathlib import Path

from harness.data import MANIFEST, aaf_folder
from model_training.dataset import (
    Face,
    file_sha256,
    index_folder,
    parse_age,
    parse_labels,
    read_manifest,
    split_faces,
    write_manifest,
)


def test_parse_age_well_formed_and_malformed_names():
    assert parse_age("26_1_2_20170116174525125.jpg.chip.jpg") == 26
    assert parse_age("100_0_0_20170112213500903.jpg.chip.jpg") == 100
    # the malformed names that exist in UTKFace
    assert parse_age("24_0_1_20170116220224657 .jpg.chip.jpg") == 24
    assert parse_age("39_1_20170116174525125.jpg.chip.jpg") == 39
    assert parse_age("55_0_0_20170116232725357jpg.chip.jpg") == 55
    assert parse_age("61_1_20170109142408075.jpg.chip.jpg") == 61
    assert parse_age("readme.jpg") is None


def test_parse_labels_gender_and_ethnicity_or_unknown():
    assert parse_labels("26_1_2_20170116174525125.jpg.chip.jpg") == ("female", "Asian")
    assert parse_labels("70_0_4_20170117.jpg.chip.jpg") == ("male", "Others")
    assert parse_labels("24_0_1_20170116220224657 .jpg.chip.jpg") == ("male", "Black")
    # a field is missing: which one cannot be told
    assert parse_labels("39_1_20170116174525125.jpg.chip.jpg") == ("unknown", "unknown")
    assert parse_labels("61_3_20170109150557335.jpg.chip.jpg") == ("unknown", "unknown")
    assert parse_labels("30_7_9_2017.jpg") == ("unknown", "unknown")  # out of range
    assert parse_labels("readme.jpg") == ("unknown", "unknown")


def test_index_drops_conflicts_keeps_one_duplicate_and_counts_undecodable(utkface_dir, tmp_path):
    chips = sorted(utkface_dir.iterdir())[:3]
    a, b, c = chips
    shutil.copy(a, tmp_path / f"30_0_0_{a.name.split('_', 3)[-1]}")
    shutil.copy(a, tmp_path / "30_0_0_copy.jpg.chip.jpg")  # same bytes, same age: keep one
    shutil.copy(b, tmp_path / "40_0_0_x.jpg.chip.jpg")
    shutil.copy(b, tmp_path / "41_0_0_y.jpg.chip.jpg")  # same bytes, other age: drop both
    shutil.copy(c, tmp_path / "50_1_0_z.jpg.chip.jpg")
    (tmp_path / "60_1_0_broken.jpg.chip.jpg").write_bytes(c.read_bytes()[:200])
    faces, report = index_folder(tmp_path)
    assert report.files == 6
    assert report.undecodable == 1
    assert report.duplicates_dropped == 1
    assert report.conflicts_dropped == 2
    assert sorted(f.age for f in faces) == [30, 50]
    assert all(f.sha256 == file_sha256(tmp_path / f.path) for f in faces)


def _faces(n_per_age: dict[int, int]) -> list[Face]:
    return [Face(f"{age}_{i}.jpg", f"{age:03d}{i:05d}", age) for age, n in n_per_age.items() for i in range(n)]


def test_split_is_deterministic_and_seed_dependent():
    faces = _faces({age: 37 for age in range(1, 60)})
    first, again, other = split_faces(faces, 7), split_faces(faces, 7), split_faces(faces, 8)
    assert first == again
    assert [f.split for f in first] != [f.split for f in other]


def test_split_is_stratified_by_age():
    faces = split_faces(_faces({age: 200 for age in (1, 25, 26, 80)} | {99: 3}), seed=1)
    by_age = defaultdict(Counter)
    for f in faces:
        by_age[f.age][f.split] += 1
    for age in (1, 25, 26, 80):
        assert abs(by_age[age]["train"] - 160) <= 1
        assert abs(by_age[age]["val"] - 20) <= 1
        assert abs(by_age[age]["test"] - 20) <= 1
    assert sum(by_age[99].values()) == 3


def test_manifest_roundtrip(tmp_path):
    faces = split_faces(_faces({3: 10, 4: 10}), seed=0)
    write_manifest(faces, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv") == faces
    assert read_manifest(tmp_path / "m.csv", "val") == [f for f in faces if f.split == "val"]


def test_committed_manifest_covers_the_cleaned_full_set(utkface_dir):
    faces = read_manifest(MANIFEST)
    assert len(faces) == 23113
    assert len({f.sha256 for f in faces}) == len(faces)
    counts = Counter(f.split for f in faces)
    assert counts == {"train": 18491, "val": 2310, "test": 2312}
    test = Counter(f.ethnicity for f in faces if f.split == "test")
    assert test == {"White": 972, "Black": 419, "Indian": 402, "Asian": 367, "Others": 152}
    assert Counter(f.gender for f in faces)["unknown"] == 3
    for f in faces[::2000]:  # the manifest names real files with the recorded content
        assert file_sha256(Path(utkface_dir) / f.path) == f.sha256


def test_aaf_index_reads_age_and_gender_from_the_name_and_states_the_sets_ethnicity(utkface_dir, tmp_path):
    root = aaf_folder(utkface_dir, tmp_path / "aaf")
    faces, report = index_folder(root, source="aaf")
    assert (report.files, report.unparsable, report.duplicates_dropped, report.conflicts_dropped) == (6, 1, 1, 2)
    assert [(f.path, f.age, f.gender) for f in faces] == [
        ("aglined faces/00012A25.jpg", 25, "female"),
        ("aglined faces/12000A07.jpg", 7, "male"),
    ]
    assert {(f.ethnicity, f.source) for f in faces} == {("mostly Asian", "aaf")}
    split = split_faces(faces, seed=42)
    write_manifest(split, tmp_path / "aaf.csv")
    assert read_manifest(tmp_path / "aaf.csv") == split  # the source column survives the round trip


def test_a_missing_aaf_folder_is_named(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="aglined faces.*shared/data/aaf/README.md"):
        index_folder(tmp_path, source="aaf")


def test_a_manifest_without_a_source_column_is_utkface(tmp_path):
    (tmp_path / "old.csv").write_text("path,sha256,age,gender,ethnicity,split\na.jpg,00,30,male,White,train\n")
    assert read_manifest(tmp_path / "old.csv")[0].source == "utkface"
