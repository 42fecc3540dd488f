"""The IJB-C loader (insightface metadata layout) on a tiny fixture written here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiqa_bench.data.base import DatasetError
from fiqa_bench.data.ijbc import LANDMARK_FILE, PAIR_FILE, TEMPLATE_FILE, load_ijbc

# image name, template id, media id: 4 templates (ids not dense, not sorted), images from 3 media
IMAGES = [
    ("1.jpg", 40, 900),
    ("2.jpg", 40, 900),
    ("3.jpg", 7, 901),
    ("4.jpg", 7, 900),
    ("5.jpg", 123, 902),
    ("6.jpg", 55, 902),
    ("7.jpg", 55, 901),
]
PAIRS = [(40, 7, 1), (40, 123, 0), (7, 55, 0), (123, 55, 1), (40, 55, 0)]


def landmark_line(k: int, name: str) -> str:
    points = [10 + k, 11 + k, 30 + k, 11.5 + k, 20 + k, 22 + k, 12 + k, 31 + k, 28 + k, 30.25 + k]
    return " ".join([name, *(f"{v:g}" for v in points), f"{0.9 + k / 100:g}"])


def write_ijbc(root: Path, *, meta: bool = True) -> Path:
    meta_dir = root / "meta" if meta else root
    meta_dir.mkdir(parents=True, exist_ok=True)
    (root / "loose_crop").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, _, _ in IMAGES:
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / "loose_crop" / name)
    (meta_dir / TEMPLATE_FILE).write_text("".join(f"{n} {t} {m}\n" for n, t, m in IMAGES))
    (meta_dir / PAIR_FILE).write_text("".join(f"{a} {b} {label}\n" for a, b, label in PAIRS))
    # landmarks in another order than the images, plus an image not in the template file (ignored)
    lines = [landmark_line(k, name) for k, (name, _, _) in enumerate(IMAGES)][::-1]
    lines.append(landmark_line(99, "999.jpg"))
    (meta_dir / LANDMARK_FILE).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def ijbc(tmp_path: Path) -> Path:
    return write_ijbc(tmp_path / "IJBC")


def test_loader_reads_templates_media_landmarks_and_pairs(ijbc: Path):
    ds, tp = load_ijbc(ijbc)
    assert ds.name == "ijbc" and len(ds) == 7
    assert ds.relative_paths() == [n for n, _, _ in IMAGES]  # file order
    assert all(p.is_file() for p in ds.paths)
    assert tp.template_ids.tolist() == [7, 40, 55, 123]
    assert tp.template_ids[tp.template_of_image].tolist() == [t for _, t, _ in IMAGES]
    assert tp.media_of_image.tolist() == [m for _, _, m in IMAGES]
    # identities are the template ids: subjects are unknown
    assert ds.identities == [str(t) for _, t, _ in IMAGES]
    assert not tp.subjects_known and tp.bootstrap_subjects is None
    assert tp.landmarks.shape == (7, 5, 2) and tp.landmarks.dtype == np.float32
    assert tp.landmarks[2].tolist() == [[12, 13], [32, 13.5], [22, 24], [14, 33], [30, 32.25]]
    assert tp.detector_scores.dtype == np.float32
    assert tp.detector_scores.tolist() == pytest.approx([0.9 + k / 100 for k in range(7)])
    ids = tp.template_ids
    got = [(int(ids[a]), int(ids[b]), int(g)) for a, b, g in zip(tp.pairs.first, tp.pairs.second, tp.pairs.genuine)]
    assert got == PAIRS
    assert tp.pairs.n_genuine == 2 and tp.pairs.n_impostor == 3
    assert tp.to_dict()["n_media"] == 3
    assert ds.pairs == {}


def test_files_directly_in_root_and_subject_map(tmp_path: Path):
    root = write_ijbc(tmp_path / "flat", meta=False)
    subjects = {40: "alice", 7: "alice", 123: "bob", 55: "bob"}
    ds, tp = load_ijbc(root, subjects=subjects)
    assert tp.subjects_known and tp.template_subjects.tolist() == ["alice", "alice", "bob", "bob"]
    assert ds.identities[:5] == ["alice", "alice", "alice", "alice", "bob"]
    assert tp.bootstrap_subjects is tp.template_subjects


def test_subject_map_is_checked(ijbc: Path):
    with pytest.raises(DatasetError, match="no subject for template 123"):
        load_ijbc(ijbc, subjects={40: "a", 7: "a", 55: "b"})
    with pytest.raises(DatasetError, match=rf"{PAIR_FILE}: line 1: label 1 for templates 40 and 7 "
                                           r"contradicts the subject map \('a', 'c'\)"):
        load_ijbc(ijbc, subjects={40: "a", 7: "c", 123: "b", 55: "b"})
    # line numbers count blank lines
    pair_file = ijbc / "meta" / PAIR_FILE
    pair_file.write_text("\n" + pair_file.read_text())
    assert load_ijbc(ijbc)[1].pairs.n_genuine == 2
    with pytest.raises(DatasetError, match=rf"{PAIR_FILE}: line 5: label 1 for templates 123 and 55 contradicts"):
        load_ijbc(ijbc, subjects={40: "a", 7: "a", 123: "b", 55: "c"})


def test_missing_root_and_files(ijbc: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="not a folder"):
        load_ijbc(tmp_path / "nowhere")
    for name in (TEMPLATE_FILE, PAIR_FILE, LANDMARK_FILE):
        broken = tmp_path / f"without-{name}"
        shutil.copytree(ijbc, broken)
        (broken / "meta" / name).unlink()
        with pytest.raises(DatasetError, match=f"{name} is missing") as info:
            load_ijbc(broken)
        assert str(broken / "meta" / name) in str(info.value) and "expected" in str(info.value)
    shutil.rmtree(ijbc / "loose_crop")
    with pytest.raises(DatasetError, match="loose_crop does not exist"):
        load_ijbc(ijbc)
    load_ijbc(ijbc, check_images=False)  # metadata alone is fine when asked


def test_missing_image_named(ijbc: Path):
    (ijbc / "loose_crop" / "6.jpg").unlink()
    with pytest.raises(DatasetError, match=r"6\.jpg listed on line 6 of .*ijbc_face_tid_mid\.txt is missing"):
        load_ijbc(ijbc)


def edit(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("file", "line", "text", "message"),
    [
        (TEMPLATE_FILE, 3, "3.jpg 7", r"ijbc_face_tid_mid\.txt: line 3 should be .* got 2 fields"),
        (TEMPLATE_FILE, 2, "2.jpg forty 900", r"ijbc_face_tid_mid\.txt: line 2: template id 'forty' is not an integer"),
        (TEMPLATE_FILE, 4, "4.jpg 7 9x", r"ijbc_face_tid_mid\.txt: line 4: media id '9x' is not an integer"),
        (TEMPLATE_FILE, 5, "1.jpg 123 902", r"line 5: image '1\.jpg' already listed on line 1"),
        (PAIR_FILE, 2, "40 123", r"ijbc_template_pair_label\.txt: line 2 should be .* got 2 fields"),
        (PAIR_FILE, 3, "7 55 2", r"ijbc_template_pair_label\.txt: line 3: label must be 0 or 1, got '2'"),
        (PAIR_FILE, 4, "123 56 1", r"ijbc_template_pair_label\.txt: line 4: template 56 has no image"),
        (PAIR_FILE, 1, "40 40 1", r"line 1: template 40 is paired with itself"),
        (LANDMARK_FILE, 2, "6.jpg 1 2 3", r"ijbc_name_5pts_score\.txt: line 2 should be .* got 4"),
        (LANDMARK_FILE, 3, landmark_line(4, "5.jpg").replace("14", "x"),
         r"ijbc_name_5pts_score\.txt: line 3: landmarks and score must be numbers"),
        (LANDMARK_FILE, 7, landmark_line(0, "0.jpg"), r"ijbc_name_5pts_score\.txt has no line for image '1\.jpg'"),
        (LANDMARK_FILE, 7, landmark_line(0, "2.jpg"), r"line 7: image '2\.jpg' has landmarks twice"),
    ],
)
def test_malformed_lines_name_file_and_line(ijbc: Path, file: str, line: int, text: str, message: str):
    edit(ijbc / "meta" / file, line, text)
    with pytest.raises(DatasetError, match=message):
        load_ijbc(ijbc)
