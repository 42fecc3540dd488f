from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import random_texture
from fiqa_bench.faces.align import NO_FACE_NOTE, AlignmentSettings, FaceAligner, process_image
from fiqa_bench.faces.detector import pick_central
from fiqa_bench.faces.io import ImageLoadError, load_rgb
from fiqa_bench.faces.templates import (
    ARCFACE_112_POINTS,
    DLIB_5_POINTS,
    apply_affine,
    get_template,
    umeyama_similarity,
)


def test_load_rgb_reasons(tmp_path: Path, lfw_face_jpeg: Path):
    rgb, notes = load_rgb(lfw_face_jpeg)
    assert rgb.shape == (250, 250, 3) and rgb.dtype == np.uint8 and notes == ()

    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file") as info:
        load_rgb(empty)
    assert str(empty) in str(info.value)

    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(lfw_face_jpeg.read_bytes()[:3000])
    with pytest.raises(ImageLoadError, match="corrupt image"):
        load_rgb(truncated)

    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a jpeg at all" * 10)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_rgb(garbage)

    grey = tmp_path / "grey.png"
    Image.fromarray(rgb[:, :, 0]).save(grey)
    out, notes = load_rgb(grey)
    assert out.shape == (250, 250, 3) and "grayscale" in notes[0]
    assert (out[:, :, 0] == rgb[:, :, 0]).all()

    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(rgba)
    out, notes = load_rgb(rgba)
    assert (out == rgb).all() and "alpha" in notes[0]


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2)) * 40
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    m = umeyama_similarity(src, dst)
    assert np.allclose(apply_affine(m, src), dst)
    with pytest.raises(ValueError):
        umeyama_similarity(np.zeros((5, 2)), dst)


def test_templates_place_eyes_where_expected():
    arc = get_template("arcface112").target_points()
    eyes = np.array([arc[2:4].mean(0), arc[0:2].mean(0)])  # image-left eye, image-right eye
    assert np.allclose(eyes, ARCFACE_112_POINTS[:2])
    assert 72 < arc[4, 1] < 82  # nose base below ArcFace's nose tip (71.7)
    dlib150 = get_template("dlib150").target_points()
    assert np.allclose(dlib150, 150 * (DLIB_5_POINTS + 0.25) / 1.5)
    with pytest.raises(ValueError, match="known"):
        get_template("vgg224")


def test_pick_central():
    boxes = [(0, 0, 10, 10), (45, 45, 55, 55), (40, 40, 60, 60)]
    assert pick_central(boxes, 100, 100) == 2  # same centre, larger wins


def test_align_real_face_and_fallback(lfw_face_jpeg: Path, tmp_path: Path):
    aligner = FaceAligner()
    templates = (get_template("dlib150"), get_template("arcface112"))
    result = process_image(aligner, lfw_face_jpeg, templates)
    assert result.failure is None and result.notes == ()
    assert result.chips["dlib150"].shape == (150, 150, 3)
    assert result.chips["arcface112"].shape == (112, 112, 3)
    left, top, right, bottom = result.face.box
    assert 50 < left < right < 200 and 50 < top < bottom < 220

    texture = tmp_path / "texture.png"
    Image.fromarray(random_texture(1, 200)).save(texture)
    result = process_image(aligner, texture, templates)
    assert result.failure is None and NO_FACE_NOTE in result.notes
    assert result.face.box == (62, 71, 145, 151)

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    result = process_image(aligner, bad, templates)
    assert result.face is None and result.failure.startswith("empty file")


def test_settings_validation_and_digest():
    with pytest.raises(ValueError, match="upsample"):
        AlignmentSettings(upsample_attempts=())
    with pytest.raises(ValueError, match="fallback_box"):
        AlignmentSettings(fallback_box=(0.5, 0.1, 0.4, 0.9))
    assert AlignmentSettings().digest() == AlignmentSettings().digest()
    assert AlignmentSettings().digest() != AlignmentSettings(upsample_attempts=(1,)).digest()


def test_retinaface_alignment_cuts_arcface_chips_from_its_own_points(lfw_face_jpeg: Path, tmp_path: Path,
                                                                    retinaface_weights: Path):
    """With ``detector="retinaface"`` the ArcFace chip is the similarity fit of RetinaFace's five points onto
    insightface's template (not the template derived for dlib's points); a face-less image falls back."""
    aligner = FaceAligner(AlignmentSettings(detector="retinaface"))
    templates = (get_template("dlib150"), get_template("arcface112"), get_template("lightqnet96"))
    result = process_image(aligner, lfw_face_jpeg, templates)
    assert result.failure is None and result.face.points5 is not None and result.face.points5.shape == (5, 2)
    m = umeyama_similarity(result.face.points5, ARCFACE_112_POINTS)
    residual = np.linalg.norm(apply_affine(m, result.face.points5) - ARCFACE_112_POINTS, axis=1)
    assert residual.max() < 6  # a real face fits the mean face within a few pixels
    image, _ = load_rgb(lfw_face_jpeg)
    import cv2

    expected = cv2.warpAffine(image, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    np.testing.assert_array_equal(result.chips["arcface112"], expected)
    assert result.chips["dlib150"].shape == (150, 150, 3) and result.chips["lightqnet96"].shape == (96, 96, 3)
    # dlib's own points are still predicted inside RetinaFace's box (dlib chips and the pose method read them)
    hog = process_image(FaceAligner(), lfw_face_jpeg, templates)
    assert np.abs(result.face.landmarks - hog.face.landmarks).max() <= 4

    texture = tmp_path / "texture.png"
    Image.fromarray(random_texture(1, 200)).save(texture)
    none = process_image(aligner, texture, templates)
    assert NO_FACE_NOTE in none.notes and none.face.points5 is None and none.face.box == (62, 71, 145, 151)
    assert AlignmentSettings(detector="retinaface").digest() != AlignmentSettings().digest()
    with pytest.raises(ValueError, match="unknown face detector 'mtcnn'"):
        AlignmentSettings(detector="mtcnn")
