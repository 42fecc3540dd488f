from collections import Counter
from pathlib import Path

import pytest

from fiqa_bench.data import DatasetError, load_dataset
from fiqa_bench.data.lfw import parse_pairs, parse_people


def test_lfw_splits_match_the_published_counts(lfw_root: Path):
    expected = {"all": (13233, 5749), "devtrain": (9525, 4038), "devtest": (3708, 1711)}
    for split, (images, people) in expected.items():
        ds = load_dataset("lfw", lfw_root, split)
        assert len(ds) == images and len(set(ds.identities)) == people
    ds = load_dataset("lfw", lfw_root, "devtest")
    assert len(ds.pairs["devtest"]) == 1000
    assert sum(p.genuine for p in ds.pairs["devtest"]) == 500
    for p in ds.pairs["devtest"]:
        assert (ds.samples[p.first].identity == ds.samples[p.second].identity) == p.genuine
    full = load_dataset("lfw", lfw_root, "all")
    assert len(full.pairs["view2"]) == 6000


def test_missing_root_names_path_and_layout(tmp_path: Path):
    with pytest.raises(DatasetError) as info:
        load_dataset("lfw", tmp_path / "nowhere")
    msg = str(info.value)
    assert str(tmp_path / "nowhere" / "lfw" / "images_deepfunneled") in msg
    assert "expected" in msg and "lfw-names.txt" in msg
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}", tmp_path)


def test_unknown_split_and_kind(lfw_root: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="devtest"):
        load_dataset("lfw", lfw_root, "dev")
    with pytest.raises(KeyError, match="did you mean 'folder'"):
        load_dataset("foldr:x", tmp_path)


def test_folder_dataset_identity_is_first_level(tmp_path: Path):
    (tmp_path / "bob" / "sub").mkdir(parents=True)
    (tmp_path / "alice").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ["bob/1.jpg", "bob/sub/2.PNG", "alice/x.jpeg", "alice/notes.txt", ".hidden/z.jpg"]:
        (tmp_path / rel).write_bytes(b"x")
    ds = load_dataset(f"folder:{tmp_path}", tmp_path)
    assert ds.relative_paths() == ["alice/x.jpeg", "bob/1.jpg", "bob/sub/2.PNG"]
    assert ds.identities == ["alice", "bob", "bob"]


def test_folder_rejects_loose_images_and_empty(tmp_path: Path):
    (tmp_path / "loose.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="loose.jpg"):
        load_dataset(f"folder:{tmp_path}", tmp_path)
    empty = tmp_path / "empty"
    (empty / "someone").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(f"folder:{empty}", tmp_path)


def test_protocol_file_parsers(tmp_path: Path):
    people = tmp_path / "p.txt"
    people.write_text("2\nA_B\t3\nC\t1\n")
    assert parse_people(people) == [("A_B", 3), ("C", 1)]
    people.write_text("3\nA_B\t3\nC\t1\n")
    with pytest.raises(DatasetError, match="header says 3"):
        parse_people(people)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t1\nA\t1\t2\nA\t1\tB\t4\n")
    assert parse_pairs(pairs) == [("A", 1, "A", 2, 0), ("A", 1, "B", 4, 0)]
    pairs.write_text("2\t1\nA\t1\t2\nA\t1\tB\t4\nC\t1\t2\nC\t1\tD\t1\n")  # View 2 layout: folds
    assert [row[4] for row in parse_pairs(pairs)] == [0, 0, 1, 1]
    pairs.write_text("3\t1\nA\t1\t2\nA\t1\tB\t4\n")
    with pytest.raises(DatasetError, match="3 folds of 2 pairs"):
        parse_pairs(pairs)
    pairs.write_text("1\nA\t1\n")
    with pytest.raises(DatasetError, match="line 2"):
        parse_pairs(pairs)


def test_a_bare_path_asks_for_the_folder_prefix(tmp_path: Path):
    from fiqa_bench.data import load_dataset

    (tmp_path / "faces" / "A").mkdir(parents=True)
    with pytest.raises(DatasetError, match=f"write --dataset folder:{tmp_path / 'faces'}"):
        load_dataset(str(tmp_path / "faces"), tmp_path)


def test_faces94_is_a_registered_identity_set(lfw_root: Path, tmp_path: Path):
    """The shipped faces94 copy: 152 people x 20 images, read in place; a missing folder is named."""
    if not (lfw_root / "faces94" / "images").is_dir():
        pytest.skip(f"faces94 not found under {lfw_root}")
    data = load_dataset("faces94", lfw_root)
    counts = Counter(data.identities)
    assert data.name == "faces94" and len(data) == 3040
    assert len(counts) == 152 and set(counts.values()) == {20}
    assert all(p.parent.name == identity and p.suffix == ".jpg" for p, identity in zip(data.paths, data.identities))
    assert data.cross_fitting is None and data.attributes is None and data.has_identities
    with pytest.raises(DatasetError, match="faces94 not found: .*images does not exist"):
        load_dataset("faces94", tmp_path)
    with pytest.raises(DatasetError, match="has no split 'devtest'"):
        load_dataset("faces94", lfw_root, "devtest")
