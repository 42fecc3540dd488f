"""Pair-list datasets: ``pairs:LIST[@IMAGES]`` in LFW's format and as CSV, and ``lfw-view2`` on real LFW.

The loaders only check that the images are files (they decode nothing), so the small folders here hold
empty files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fiqa_bench.data import DATASETS, DatasetError, Pair, load_dataset
from fiqa_bench.data.lfw import parse_people
from fiqa_bench.data.pairs import load_pair_list, split_argument


def touch(root: Path, *relative: str) -> None:
    for rel in relative:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def lfw_folder(root: Path) -> Path:
    """Images of Bob (3), Al (1), Cy (2) in LFW's layout under ``root/images``."""
    touch(root / "images", "Bob/Bob_0001.jpg", "Bob/Bob_0002.jpg", "Bob/Bob_0003.jpg", "Al/Al_0001.jpg",
          "Cy/Cy_0001.jpg", "Cy/Cy_0002.jpg")
    return root / "images"


def load(spec: str, tmp_path: Path, split: str | None = None):
    return load_dataset(spec, tmp_path, split, cache_dir=tmp_path / "cache")


def test_both_kinds_are_registered():
    assert "pairs" in DATASETS and "lfw-view2" in DATASETS


def test_lfw_format_with_folds(tmp_path: Path):
    images = lfw_folder(tmp_path)
    listing = tmp_path / "my pairs.txt"
    listing.write_text("2\t1\nBob\t1\t3\nBob\t2\tAl\t1\n\nCy\t1\t2\nCy\t2\tBob\t1\n")
    ds = load(f"pairs:{listing}@{images}", tmp_path)
    assert ds.name == "pairs:my pairs.txt" and ds.root == images
    assert ds.relative_paths() == ["Al/Al_0001.jpg", "Bob/Bob_0001.jpg", "Bob/Bob_0002.jpg", "Bob/Bob_0003.jpg",
                                   "Cy/Cy_0001.jpg", "Cy/Cy_0002.jpg"]  # only the images the pairs name, sorted
    assert ds.identities == ["Al", "Bob", "Bob", "Bob", "Cy", "Cy"] and ds.has_identities
    assert ds.pair_list == "pairs" and list(ds.pairs) == ["pairs"]
    assert ds.evaluation_pairs == (Pair(1, 3, True, 0), Pair(2, 0, False, 0), Pair(4, 5, True, 1),
                                   Pair(5, 1, False, 1))
    assert ds.notes == ()


def test_lfw_format_one_fold_and_images_beside_the_list(tmp_path: Path):
    images = lfw_folder(tmp_path)
    (images / "pairs@2.lst").write_text("2\nBob\t1\t2\nAl\t1\tCy\t2\n")
    ds = load(f"pairs:{images / 'pairs@2.lst'}", tmp_path)  # a file with '@' in its name is taken whole
    assert ds.root == images and ds.name == "pairs:pairs@2.lst"
    assert [p.fold for p in ds.evaluation_pairs] == [0, 0]
    assert ds.relative_paths() == ["Al/Al_0001.jpg", "Bob/Bob_0001.jpg", "Bob/Bob_0002.jpg", "Cy/Cy_0002.jpg"]


def test_split_argument(tmp_path: Path):
    (tmp_path / "a@b").mkdir()
    listing = tmp_path / "a@b" / "l.csv"
    listing.write_text("x")
    assert split_argument(str(listing)) == (listing, None)
    assert split_argument(f"{listing}@/img@s") == (listing, Path("/img@s"))
    assert split_argument("/no/list.csv@/img") == (Path("/no/list.csv"), Path("/img"))
    assert split_argument("/no/list.csv") == (Path("/no/list.csv"), None)


def test_csv_with_header_fold_and_absolute_path(tmp_path: Path):
    images = tmp_path / "img"
    touch(images, "a/1.jpg", "a/2.jpg", "b/1.png", "c/1.jpg")
    outside = tmp_path / "elsewhere" / "d.jpg"
    touch(outside.parent, "d.jpg")
    listing = tmp_path / "list.CSV"
    listing.write_text(f"first,second,same person,fold\n"
                       f"a/1.jpg, a/2.jpg ,TRUE,3\n"
                       f"a/2.jpg,b/1.png,No,3\n"
                       f"\n"
                       f"b/1.png,{outside},yes,1\n"
                       f"c/1.jpg,a/1.jpg,0,0\n")
    ds = load(f"pairs:{listing}@{images}", tmp_path)
    assert ds.name == "pairs:list.CSV" and ds.root == images
    assert ds.paths == sorted([images / "a/1.jpg", images / "a/2.jpg", images / "b/1.png", images / "c/1.jpg",
                               outside])
    index = {p: i for i, p in enumerate(ds.paths)}
    a1, a2, b1, c1, d = (index[p] for p in (images / "a/1.jpg", images / "a/2.jpg", images / "b/1.png",
                                           images / "c/1.jpg", outside))
    assert ds.evaluation_pairs == (Pair(a1, a2, True, 3), Pair(a2, b1, False, 3), Pair(b1, d, True, 1),
                                   Pair(c1, a1, False, 0))
    # pseudo-identities: the genuine pairs join a1-a2 and b1-d; c1 is alone
    ids = ds.identities
    assert not ds.has_identities
    assert ids[a1] == ids[a2] and ids[b1] == ids[d] and len({ids[a1], ids[b1], ids[c1]}) == 3
    assert all(i.startswith("list-") for i in ids)


def test_csv_without_header_or_fold_keeps_the_first_row(tmp_path: Path):
    touch(tmp_path, "x.jpg", "y.jpg", "z.jpg")
    listing = tmp_path / "l.csv"
    listing.write_text("x.jpg,y.jpg,1\ny.jpg,z.jpg,false\n")
    ds = load(f"pairs:{listing}", tmp_path)  # images beside the list
    assert ds.evaluation_pairs == (Pair(0, 1, True, 0), Pair(1, 2, False, 0))
    assert len(set(ds.identities)) == 2


def test_duplicates_are_kept_and_counted(tmp_path: Path):
    touch(tmp_path, "x.jpg", "y.jpg", "z.jpg")
    listing = tmp_path / "l.csv"
    listing.write_text("x.jpg,y.jpg,1\ny.jpg,x.jpg,yes\nx.jpg,z.jpg,0\nx.jpg,y.jpg,1\n")
    ds = load_pair_list(listing)
    assert len(ds.evaluation_pairs) == 4 and ds.evaluation_pairs[1] == Pair(1, 0, True, 0)
    assert len(ds.notes) == 1 and "2 pairs listed more than once" in ds.notes[0] and str(listing) in ds.notes[0]
    listing.write_text("x.jpg,y.jpg,1\nx.jpg,z.jpg,0\ny.jpg,x.jpg,no\n")
    with pytest.raises(DatasetError, match=r"line 3 lists the pair of line 1 again with the other label"):
        load_pair_list(listing)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("l.csv", "x.jpg,y.jpg,1\nx.jpg,nope/q.jpg,0\n", r"line 2: image .*nope/q\.jpg does not exist"),
    ("l.csv", "x.jpg,y.jpg,1\nx.jpg,y.jpg\n", r"line 2 is not a pair"),
    ("l.csv", "x.jpg,y.jpg,1\nx.jpg,,1\n", r"line 2 is not a pair"),
    ("l.csv", "x.jpg,y.jpg,1,0,extra\n", r"line 1 is not a pair"),
    ("l.csv", "a,b,same\nx.jpg,y.jpg,1\n\ny.jpg,x.jpg,maybe\n", r"line 4: unknown 'same' value 'maybe'"),
    ("l.csv", "x.jpg,y.jpg,1,-1\n", r"line 1: the fold '-1' is not an integer"),
    ("l.csv", "x.jpg,y.jpg,1\ny.jpg,./y.jpg,1\n", r"line 2 pairs the image .*y\.jpg with itself"),
    ("l.csv", "path1,path2,same\n\n", r"holds no pair"),
    ("l.csv", "", r"holds no pair"),
    ("l.txt", "1\nBob\t1\t1\n", r"line 2 pairs the image .*Bob_0001\.jpg with itself"),
    ("l.txt", "2\nBob\t1\t2\nBob\t1\tZed\t1\n", r"line 3: image .*Zed/Zed_0001\.jpg does not exist"),
    ("l.txt", "2\nBob\t1\t2\nBob\tone\tAl\t1\n", r"line 3 is not a pair"),
    ("l.txt", "2\nBob\t1\t2\nBob\t1\tAl\n", r"line 3 is not a pair"),
    ("l.txt", "1\t0\n", r"holds no pair"),
    ("l.txt", "", r"is empty"),
])
def test_errors_name_the_file_and_line(tmp_path: Path, name: str, text: str, message: str):
    touch(tmp_path, "x.jpg", "y.jpg")
    lfw_folder(tmp_path)
    listing = tmp_path / name
    listing.write_text(text)
    images = tmp_path / "images" if name.endswith(".txt") else tmp_path
    with pytest.raises(DatasetError, match=message) as info:
        load(f"pairs:{listing}@{images}", tmp_path)
    assert str(listing) in str(info.value)


def test_missing_list_folder_argument_and_split(tmp_path: Path):
    with pytest.raises(DatasetError, match=re.escape(f"pair list {tmp_path / 'no.csv'} does not exist")):
        load(f"pairs:{tmp_path / 'no.csv'}@{tmp_path}", tmp_path)
    listing = tmp_path / "l.csv"
    listing.write_text("x.jpg,y.jpg,1\n")
    with pytest.raises(DatasetError, match=re.escape(f"image folder {tmp_path / 'gone'} of pair list")):
        load(f"pairs:{listing}@{tmp_path / 'gone'}", tmp_path)
    with pytest.raises(DatasetError, match="needs a pair list"):
        load("pairs", tmp_path)
    touch(tmp_path, "x.jpg", "y.jpg")
    with pytest.raises(DatasetError, match="no split 'devtest'"):
        load(f"pairs:{listing}", tmp_path, "devtest")


def test_lfw_view2_missing(tmp_path: Path):
    expected = f"LFW View 2 not found: expected {tmp_path / 'lfw' / 'pairs.txt'}"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        load("lfw-view2", tmp_path)
    with pytest.raises(DatasetError, match=re.escape(f"expected {tmp_path / 'x' / 'pairs.txt'}")):
        load(f"lfw-view2:{tmp_path / 'x'}", tmp_path)


def test_lfw_view2_on_real_lfw(lfw_root: Path, tmp_path: Path):
    lfw = lfw_root / "lfw"
    view2 = load_dataset("lfw-view2", lfw_root, cache_dir=tmp_path)
    assert view2.name == "lfw-view2" and view2.has_identities and view2.pair_list == "pairs"
    pairs = view2.evaluation_pairs
    assert len(pairs) == 6000 and sum(p.genuine for p in pairs) == 3000
    assert sorted({p.fold for p in pairs}) == list(range(10))
    assert all((view2.identities[p.first] == view2.identities[p.second]) == p.genuine for p in pairs)
    assert len(view2) == 7701 and len(set(view2.identities)) == 4281  # the distinct images View 2 names
    assert load_dataset(f"lfw-view2:{lfw}", lfw_root, cache_dir=tmp_path).samples == view2.samples
    same = load_dataset(f"pairs:{lfw / 'pairs.txt'}@{lfw / 'images_deepfunneled'}", lfw_root, cache_dir=tmp_path)
    assert same.samples == view2.samples and same.pairs == view2.pairs and same.identities == view2.identities

    fitting = view2.cross_fitting()
    assert [trained_on for _, trained_on in fitting.folds] == ["lfw:devtrain", "lfw:devtest"]
    parts = [part for part, _ in fitting.folds]
    assert [len(part) for part in parts] == [2286, 5415]
    assert sorted(s.path for part in parts for s in part.samples) == view2.paths  # every image once
    for part in parts:  # dataset order within a part
        assert part.paths == sorted(part.paths)
    test_people = {name for name, _ in parse_people(lfw / "peopleDevTest.txt")}
    assert set(parts[0].identities) <= test_people and not set(parts[1].identities) & test_people
    for part, trained_on in fitting.folds:  # no part meets a model trained on one of its people
        assert not set(part.identities) & set(load_dataset(trained_on, lfw_root, cache_dir=tmp_path).identities)
