"""Reading images as RGB uint8 arrays, with a reason for everything odd.

Pillow decodes every format, and the image is fully loaded, so a truncated
JPEG fails here (Pillow raises) instead of turning silently grey.  What
happens to an odd image is one of two things, and every output carries it
(the ``reason`` column of ``score``, ``reasons`` of ``embed``):

**Failure** (:class:`ImageLoadError`; the image gets a NaN embedding, a NaN
quality, the face outcome ``"not analysed"`` and the reason, never a score):

* ``"unreadable file: <OS error>"``: missing, or no permission;
* ``"empty file"``: zero bytes;
* ``"not an image: <Pillow message>"``: no decoder recognises the bytes;
* ``"corrupt image: <decoder message>"``: the decoder stopped before the
  end, e.g. a truncated JPEG (``image file is truncated (5 bytes not
  processed)``).  A file counts only when it decodes completely: a
  truncated JPEG whose first rows Pillow could show is still a failure,
  because the missing rows would be scored as grey;
* ``"image too small: WxH px, below 8 px"``: a side shorter than
  :data:`MIN_SIDE` pixels leaves nothing to align.

**Note** (the image is used and scored; the note fills its reason):

* a conversion to 8-bit RGB: ``"converted from grayscale (L)"``,
  ``"converted from 16-bit grayscale (I;16)"`` (scaled by its maximum to
  8 bits), ``"converted from 16-bit RGB"`` (Pillow keeps the top 8 bits),
  ``"converted from RGBA: alpha channel dropped"``, ``"converted from CMYK"``,
  ``"converted from palette (P)"`` ...;
* a small image: ``"20x16 px, below the 32 px a face detector can use"``
  when a side is under :data:`DETECTABLE_SIDE` = 32 pixels, the threshold
  chosen here: dlib's HOG detector scans an 80 px window, so even after the
  default 2x upsampling the smallest face it finds is about 40 px wide, and
  32 px is four cells of RetinaFace's finest (8 px) anchor grid.  Such an
  image is in practice aligned inside the fallback box (noted as such too),
  and its score says little about a face.

Every note starts with ``"converted from "`` or matches the small-image
form, so :func:`is_load_note` tells them from the face detector's notes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Images with a side shorter than this many pixels are failures.
MIN_SIDE = 8
#: Images with a side shorter than this many pixels are scored but noted (see the module docstring).
DETECTABLE_SIDE = 32
_SMALL_NOTE = re.compile(r"^\d+x\d+ px, below the \d+ px a face detector can use$")
#: How notes were worded before they started with "converted from" (still in older caches).
_OLD_NOTE_PREFIXES = ("grayscale converted", "alpha channel dropped", "converted to RGB")

_MODE_NAMES = {"L": "grayscale", "1": "1-bit black and white", "I;16": "16-bit grayscale",
               "I;16B": "16-bit grayscale", "I;16L": "16-bit grayscale", "I": "32-bit integer grayscale",
               "F": "32-bit float grayscale", "P": "palette", "LA": "grayscale with alpha",
               "RGBA": "RGBA", "PA": "palette with alpha", "CMYK": "CMYK", "YCbCr": "YCbCr",
               "LAB": "Lab", "HSV": "HSV", "RGBX": "RGBX"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class ImageLoadError(ValueError):
    """An image could not be read; ``reason`` is a short machine-friendly label."""

    def __init__(self, path: Path, reason: str, detail: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}{': ' + detail if detail else ''}")


def is_load_note(note: str) -> bool:
    """Whether ``note`` was made by :func:`load_rgb` (a conversion or a small image), not by the aligner."""
    return note.startswith(("converted from ", *_OLD_NOTE_PREFIXES)) or bool(_SMALL_NOTE.match(note))


def small_image_note(width: int, height: int) -> str | None:
    """The note of an image too small for a face detector, or None."""
    if min(width, height) >= DETECTABLE_SIDE:
        return None
    return f"{width}x{height} px, below the {DETECTABLE_SIDE} px a face detector can use"


def _raw_mode(im: Image.Image) -> str:
    """The decoder's raw mode of an image not yet loaded (e.g. ``"RGB;16B"`` for a 16-bit RGB PNG), or ``""``."""
    if not getattr(im, "tile", None):
        return ""
    args = im.tile[0][3]
    return args if isinstance(args, str) else str(args[0]) if isinstance(args, tuple) and args else ""


def _conversion_note(mode: str, raw_mode: str, has_transparency: bool) -> str | None:
    """What converting an image of ``mode`` to 8-bit RGB does, as a note; None when nothing changes."""
    if mode == "RGB":
        return "converted from 16-bit RGB" if ";16" in raw_mode else None
    name = _MODE_NAMES.get(mode, mode)
    label = name if name == mode else f"{name} ({mode})"
    if mode in _ALPHA_MODES or (mode == "P" and has_transparency):
        return f"converted from {label}: alpha channel dropped"
    return f"converted from {label}"


def load_rgb(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """The image at ``path`` as ``(H, W, 3)`` uint8 RGB, and notes on conversions and size.

    Raises:
        ImageLoadError: the file is unreadable, empty, not an image, corrupt
            or truncated, or under :data:`MIN_SIDE` pixels on a side.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageLoadError(path, "unreadable file", err.strerror or str(err)) from err
    if size == 0:
        raise ImageLoadError(path, "empty file")
    try:
        with Image.open(path) as im:
            raw_mode = _raw_mode(im)
            im.load()
            mode = im.mode
            note = _conversion_note(mode, raw_mode, "transparency" in im.info)
            if mode in _WIDE_MODES:
                arr = np.asarray(im, dtype=np.float64)
                top = arr.max() if arr.size and arr.max() > 0 else 1.0
                grey = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
                rgb = np.repeat(grey[:, :, None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError as err:
        raise ImageLoadError(path, "not an image", str(err)) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(path, "corrupt image", str(err)) from err
    if rgb.ndim != 3:
        raise ImageLoadError(path, "corrupt image", f"decoded to an array of shape {rgb.shape}")
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageLoadError(path, "image too small", f"{width}x{height} px, below {MIN_SIDE} px")
    notes = tuple(n for n in (note, small_image_note(width, height)) if n)
    return np.ascontiguousarray(rgb), notes
