"""Attribute loaders (UTKFace names, LFW gender lists, CSV, Adience folds) on tmp fixtures, and the real counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fiqa_bench.data import DatasetError
from fiqa_bench.data.lfw import load_lfw_gender
from fiqa_bench.data.attributes import (
    ADIENCE_COLUMNS,
    age_bin_labels,
    age_group,
    lfw_gender_table,
    load_adience,
    load_attribute_csv,
    load_utkface,
    load_utkface_attributes,
    parse_utkface_name,
)
from fiqa_bench.pipeline.paths import default_data_root

# --------------------------------------------------------------------------- UTKFace


def make_utkface(root: Path, names: list[str]) -> Path:
    folder = root / "utkface" / "images"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def test_age_bins():
    assert age_bin_labels((0, 20, 40, 60)) == ("0-19", "20-39", "40-59", "60+")
    assert [age_group(a) for a in (0, 19, 20, 59, 60, 110)] == ["0-19", "0-19", "20-39", "40-59", "60+", "60+"]
    assert age_group(7, (0, 3, 10)) == "3-9"
    for bad in ((5, 20), (0, 20, 20), (), (0, 2.5)):
        with pytest.raises(ValueError, match="age bin edges"):
            age_bin_labels(bad)
    with pytest.raises(ValueError, match="age must be >= 0"):
        age_group(-1)


def test_utkface_names_and_labels(tmp_path: Path):
    names = [
        "25_0_0_20170116174525125.jpg.chip.jpg",
        "5_1_2_20161219203650636.jpg.chip.jpg",
        "70_1_4_2017010914240807.jpg.chip.jpg",  # a short datetime is not a label: accepted
        "61_1_20170109142408075.jpg.chip.jpg",  # a field missing
        "30_2_1_20170109142408075.jpg.chip.jpg",  # gender 2
        "30_0_7_20170109142408075.jpg.chip.jpg",  # race 7
        "x_0_0_20170109142408075.jpg.chip.jpg",  # age not a number
    ]
    folder = make_utkface(tmp_path, names)
    (folder / "notes.txt").write_text("not an image")
    table = load_utkface_attributes(tmp_path)
    assert table.attributes == ("age", "age_group", "gender", "race")
    assert table.label("race", names[0]) == "White" and table.label("gender", names[1]) == "female"
    assert table.label("age_group", names[2]) == "60+" and table.label("age", names[1]) == "5"
    assert table.counts("gender") == {"male": 1, "female": 2}
    assert table.counts("race") == {"White": 1, "Black": 0, "Asian": 1, "Indian": 0, "Others": 1}
    assert table.counts("age_group") == {"0-19": 1, "20-39": 1, "40-59": 0, "60+": 1}
    assert table.issue_counts() == {"missing-field": 1, "invalid-value": 3}
    (missing,) = table.issues_of("missing-field")
    assert missing.text == names[3] and "ambiguous" in missing.detail and missing.source == str(folder)
    for name in names[3:]:  # nothing is guessed: no attribute at all
        assert all(table.label(a, name) is None for a in table.attributes)
    details = " ".join(i.detail for i in table.issues_of("invalid-value"))
    assert "gender '2'" in details and "race '7'" in details and "age 'x'" in details
    fine = load_utkface_attributes(tmp_path, age_bins=(0, 10, 30))
    assert fine.counts("age_group") == {"0-9": 1, "10-29": 1, "30+": 1}
    json.dumps(table.to_dict())


def test_utkface_dataset_each_image_its_own_identity(tmp_path: Path):
    names = ["25_0_0_20170116174525125.jpg.chip.jpg", "5_1_2_20161219203650636.jpg.chip.jpg"]
    make_utkface(tmp_path, names)
    ds = load_utkface(tmp_path)
    assert ds.relative_paths() == sorted(names) and ds.identities == sorted(names)
    table = load_utkface_attributes(tmp_path)
    assert table.for_dataset(ds, "gender") == ["male", "female"]
    with pytest.raises(ValueError, match="has no attribute 'sex'"):
        table.for_dataset(ds, "sex")


def test_utkface_missing_or_empty_folder(tmp_path: Path):
    with pytest.raises(DatasetError, match=str(tmp_path / "nowhere" / "utkface" / "images")):
        load_utkface(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="does not exist"):
        load_utkface_attributes(tmp_path / "nowhere")
    make_utkface(tmp_path, [])
    with pytest.raises(DatasetError, match="no images"):
        load_utkface(tmp_path)


def test_parse_utkface_name():
    assert parse_utkface_name("1_0_3_20170104211500535.jpg.chip.jpg") == (1, "male", "Indian")
    assert parse_utkface_name("61_3_20170109150557335.jpg.chip.jpg").kind == "missing-field"


# --------------------------------------------------------------------------- LFW gender


def make_lfw(root: Path, images: list[str]) -> Path:
    folder = root / "lfw" / "images_deepfunneled"
    for rel in images:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"x")
    (root / "lfw" / "gender").mkdir(parents=True)
    return root / "lfw" / "gender"


def test_lfw_gender_crlf_missing_suffix_duplicates_conflicts(tmp_path: Path):
    gender = make_lfw(tmp_path, ["A_B/A_B_0001.jpg", "A_B/A_B_0002.jpg", "C/C_0001.jpg", "D/D_0001.jpg",
                                 "E/E_0001.jpg"])
    (gender / "male_names.txt").write_bytes(
        b"A_B_0001.jpg\r\nA_B_0002\r\nA_B_0001.jpg\r\nC_0001.jpg\r\nZ_0001.jpg\r\n\r\n")
    (gender / "female_names.txt").write_bytes(b"C_0001.jpg\r\n D_0001.jpg \r\nbad name\r\n")
    table = load_lfw_gender(tmp_path)
    assert table.labels["gender"] == {"A_B/A_B_0001.jpg": "male", "A_B/A_B_0002.jpg": "male",
                                      "D/D_0001.jpg": "female"}
    assert table.counts("gender") == {"male": 2, "female": 1}
    assert table.issue_counts() == {"missing-suffix": 1, "duplicate": 1, "unmatched": 1, "blank": 1,
                                    "malformed": 1, "conflict": 1, "unlabelled": 1}
    where = {i.kind: (Path(i.source).name, i.line, i.text) for i in table.issues}
    assert where["missing-suffix"] == ("male_names.txt", 2, "A_B_0002")
    assert where["duplicate"] == ("male_names.txt", 3, "A_B_0001.jpg")
    assert where["unmatched"] == ("male_names.txt", 5, "Z_0001.jpg")
    assert where["blank"][:2] == ("male_names.txt", 6)
    assert where["malformed"] == ("female_names.txt", 3, "bad name")
    assert where["unlabelled"][2] == "E/E_0001.jpg"
    (conflict,) = table.issues_of("conflict")
    assert conflict.text == "C/C_0001.jpg" and "male_names.txt:4" in conflict.detail
    assert "female_names.txt:1" in conflict.detail
    assert "male_names.txt:3" in str(table.issues_of("duplicate")[0])


def test_lfw_gender_table_accepts_lf_and_reports_missing_lists(tmp_path: Path):
    (tmp_path / "m.txt").write_text("X_0001.jpg\n")
    (tmp_path / "f.txt").write_text("Y_0001.jpg\n")
    table = lfw_gender_table({"male": tmp_path / "m.txt", "female": tmp_path / "f.txt"},
                             ["X/X_0001.jpg", "Y/Y_0001.jpg"])
    assert table.counts("gender") == {"male": 1, "female": 1} and table.issues == ()
    make_lfw(tmp_path / "root", ["X/X_0001.jpg"])
    with pytest.raises(DatasetError, match="male_names.txt is missing"):
        load_lfw_gender(tmp_path / "root")
    with pytest.raises(DatasetError, match=str(tmp_path / "none" / "lfw" / "images_deepfunneled")):
        load_lfw_gender(tmp_path / "none")


# --------------------------------------------------------------------------- CSV


def test_csv_loader(tmp_path: Path):
    (tmp_path / "imgs" / "p").mkdir(parents=True)
    for rel in ("p/1.jpg", "p/2.jpg", "3.jpg"):
        (tmp_path / "imgs" / rel).write_bytes(b"x")
    f = tmp_path / "labels.csv"
    f.write_bytes(b"\xef\xbb\xbfpath,gender,age\r\n./p/1.jpg,female,20-39\r\np\\2.jpg,male,\r\n\r\n"
                  b"3.jpg, male ,60+\r\ngone.jpg,female,0-19\r\n")
    table = load_attribute_csv(f)
    assert table.attributes == ("gender", "age")
    assert table.labels["gender"] == {"p/1.jpg": "female", "p/2.jpg": "male", "3.jpg": "male",
                                      "gone.jpg": "female"}
    assert table.n_unknown == {"gender": 0, "age": 1} and table.orders["gender"] == ("female", "male")
    checked = load_attribute_csv(f, root=tmp_path / "imgs")
    (issue,) = checked.issues
    assert (issue.kind, issue.line, issue.text) == ("unmatched", 6, "gone.jpg")
    assert "gone.jpg" not in checked.labels["gender"]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("file,gender\na.jpg,m\n", ":1: the header must be 'path,<attribute>"),
    ("path\na.jpg\n", ":1: the header"),
    ("path,g,g\na.jpg,m,m\n", ":1: attribute names must be non-empty and distinct"),
    ("path,g\na.jpg,m\nb.jpg\n", ":3: 1 fields, the header has 2"),
    ("path,g\na.jpg,m\n,f\n", ":3: empty path"),
    ("path,g\n/abs/a.jpg,m\n", ":2: path '/abs/a.jpg' must be relative"),
    ("path,g\n../a.jpg,m\n", ":2: path '../a.jpg' must be relative"),
    ("path,g\na.jpg,m\n\nb.jpg,f\n./a.jpg,f\n", ":5: a.jpg is listed again \\(first on line 2\\)"),
])
def test_csv_errors_name_file_and_line(tmp_path: Path, content: str, message: str):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(DatasetError, match=str(f) + ".*" + message if message.startswith(":") else message):
        load_attribute_csv(f)


def test_csv_missing_file(tmp_path: Path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'no.csv'} does not exist"):
        load_attribute_csv(tmp_path / "no.csv")


# --------------------------------------------------------------------------- Adience


def adience_row(user: str, image: str, face: int, age: str, gender: str) -> str:
    return "\t".join([user, image, str(face), age, gender, "0", "414", "1086", "1383", "-115", "30", "17"])


def make_adience(root: Path, folds: dict[int, list[str]], present: set[str]) -> Path:
    base = root / "adience"
    for key in present:
        (base / "faces" / key).parent.mkdir(parents=True, exist_ok=True)
        (base / "faces" / key).write_bytes(b"x")
    base.mkdir(parents=True, exist_ok=True)
    for k, rows in folds.items():
        text = "\t".join(ADIENCE_COLUMNS) + "\r\n" + "".join(r + "\r\n" for r in rows)
        (base / f"fold_{k}_data.txt").write_bytes(text.encode())
    return base


def face(user: str, face_id: int, image: str) -> str:
    return f"{user}/coarse_tilt_aligned_face.{face_id}.{image}"


def test_adience_fixture(tmp_path: Path):
    u1, u2 = "30601258@N03", "7153718@N04"
    rows0 = [
        adience_row(u1, "100_a_o.jpg", 1, "(25, 32)", "f"),
        adience_row(u1, "101_b_o.jpg", 2, "(0, 2)", "m"),
        adience_row(u1, "102_c_o.jpg", 1, "None", "u"),
        adience_row(u2, "200_d_o.jpg", 5, "35", ""),
        adience_row(u2, "201_e_o.jpg", 5, "(8, 12)", "x"),
        adience_row(u2, "202_f_o.jpg", 6, "adult", "m"),
        adience_row(u2, "203_g_o.jpg", 6, "(60, 100)", "f"),  # image absent
    ]
    rows1 = [adience_row(u2, "300_h_o.jpg", 7, "(38, 43)", "m") + "\t",  # a trailing tab
             adience_row(u1, "100_a_o.jpg", 1, "(25, 32)", "f")]  # listed again
    present = {face(u1, 1, "100_a_o.jpg"), face(u1, 2, "101_b_o.jpg"), face(u1, 1, "102_c_o.jpg"),
               face(u2, 5, "200_d_o.jpg"), face(u2, 5, "201_e_o.jpg"), face(u2, 6, "202_f_o.jpg"),
               face(u2, 7, "300_h_o.jpg")}
    make_adience(tmp_path, {0: rows0, 1: rows1}, present)
    ds, table = load_adience(tmp_path)
    assert ds.name == "adience" and len(ds) == 7 and ds.root == tmp_path / "adience" / "faces"
    assert ds.relative_paths() == sorted(present)
    assert sorted(set(ds.identities)) == [u1, u2]
    assert table.label("age", face(u1, 1, "100_a_o.jpg")) == "25-32"
    assert table.label("age", face(u2, 5, "200_d_o.jpg")) == "35"
    assert table.label("gender", face(u1, 2, "101_b_o.jpg")) == "male"
    assert table.label("fold", face(u2, 7, "300_h_o.jpg")) == "1"
    assert table.orders["age"] == ("0-2", "8-12", "25-32", "35", "38-43")
    assert table.counts("gender") == {"male": 3, "female": 1}
    assert table.n_unknown == {"age": 1, "gender": 2, "fold": 0}
    assert table.issue_counts() == {"invalid-value": 2, "missing-image": 1, "duplicate": 1}
    lines = {(i.kind, Path(i.source).name, i.line) for i in table.issues}
    assert lines == {("invalid-value", "fold_0_data.txt", 6), ("invalid-value", "fold_0_data.txt", 7),
                     ("missing-image", "fold_0_data.txt", 8), ("duplicate", "fold_1_data.txt", 3)}
    assert "fold_0_data.txt:2" in table.issues_of("duplicate")[0].detail
    assert table.for_dataset(ds, "age")[:3] == ["25-32", None, "0-2"]  # sorted: face 1 of 102 before face 2
    by_face, _ = load_adience(tmp_path, identity="face")
    assert sorted(set(by_face.identities)) == [f"{u1}/1", f"{u1}/2", f"{u2}/5", f"{u2}/6", f"{u2}/7"]
    only1, t1 = load_adience(tmp_path, folds=[1])
    assert only1.name == "adience:folds=1" and len(only1) == 2 and t1.issues == ()


def test_adience_errors(tmp_path: Path):
    with pytest.raises(DatasetError, match=f"dataset not found at {tmp_path / 'adience'}"):
        load_adience(tmp_path)
    good = adience_row("u", "i.jpg", 1, "(0, 2)", "m")
    make_adience(tmp_path, {0: [good, "u\ti.jpg\t1\t(0, 2)\tm"]}, set())
    with pytest.raises(DatasetError, match=r"fold_0_data.txt:3: 5 tab-separated fields, expected 12"):
        load_adience(tmp_path)
    with pytest.raises(DatasetError, match="fold_3_data.txt is missing"):
        load_adience(tmp_path, folds=[3])
    make_adience(tmp_path, {0: [adience_row("u", "i.jpg", "one", "(0, 2)", "m")]}, set())
    with pytest.raises(DatasetError, match="fold_0_data.txt:2: .*face_id an integer"):
        load_adience(tmp_path)
    (tmp_path / "adience" / "fold_0_data.txt").write_text("user_id\timage\n")
    with pytest.raises(DatasetError, match="fold_0_data.txt:1: header"):
        load_adience(tmp_path)
    (tmp_path / "adience" / "fold_0_data.txt").unlink()
    with pytest.raises(DatasetError, match="no fold_<k>_data.txt"):
        load_adience(tmp_path)
    with pytest.raises(ValueError, match="identity must be"):
        load_adience(tmp_path, identity="person")


# --------------------------------------------------------------------------- real shared data


@pytest.fixture(scope="module")
def data_root() -> Path:
    return default_data_root()


def test_real_utkface_counts(data_root: Path):
    if not (data_root / "utkface" / "images").is_dir():
        pytest.skip(f"UTKFace not found under {data_root}")
    ds = load_utkface(data_root)
    table = load_utkface_attributes(data_root)
    assert len(ds) == 9780 and len(set(ds.identities)) == 9780
    assert table.counts("gender") == {"male": 4372, "female": 5406}
    assert table.counts("race") == {"White": 5265, "Black": 405, "Asian": 1553, "Indian": 1452, "Others": 1103}
    assert table.counts("age_group") == {"0-19": 4164, "20-39": 2551, "40-59": 1613, "60+": 1450}
    assert sorted(i.text for i in table.issues) == ["61_1_20170109142408075.jpg.chip.jpg",
                                                    "61_3_20170109150557335.jpg.chip.jpg"]
    assert table.issue_counts() == {"missing-field": 2}
    labels = table.for_dataset(ds, "race")
    assert sum(v is None for v in labels) == 2


def test_real_lfw_gender_counts(data_root: Path):
    if not (data_root / "lfw" / "gender" / "male_names.txt").is_file():
        pytest.skip(f"LFW gender lists not found under {data_root}")
    table = load_lfw_gender(data_root)
    assert table.counts("gender") == {"male": 10263, "female": 2961}
    assert table.issue_counts() == {"blank": 1, "missing-suffix": 1, "conflict": 5, "unlabelled": 4}
    (blank,) = table.issues_of("blank")
    assert (Path(blank.source).name, blank.line) == ("male_names.txt", 10269)
    (suffix,) = table.issues_of("missing-suffix")
    assert (Path(suffix.source).name, suffix.line, suffix.text) == ("female_names.txt", 2, "Allison_Searing_0001")
    assert [i.text for i in table.issues_of("conflict")] == [
        "Allison_Searing/Allison_Searing_0001.jpg", "Claudia_Coslovich/Claudia_Coslovich_0001.jpg",
        "Elizabeth_Hill/Elizabeth_Hill_0001.jpg", "Erika_Reyes/Erika_Reyes_0001.jpg",
        "Tatiana_Shchegoleva/Tatiana_Shchegoleva_0001.jpg"]
    assert [i.text for i in table.issues_of("unlabelled")] == [
        "Robert_Evans/Robert_Evans_0001.jpg", "Robert_Evans/Robert_Evans_0002.jpg", "Tara_Kirk/Tara_Kirk_0001.jpg",
        "Yasser_Arafat/Yasser_Arafat_0005.jpg"]
    # 13,235 lines = 13,234 names + 1 blank; 13,234 names = 13,224 labelled + 2 x 5 conflicting
    assert 10263 + 2961 + 2 * 5 + 1 == 13235
    # every genuine LFW pair shares a label: no person carries two genders once conflicts are dropped
    by_person: dict[str, set[str]] = {}
    for path, label in table.labels["gender"].items():
        by_person.setdefault(path.split("/")[0], set()).add(label)
    assert all(len(v) == 1 for v in by_person.values())
