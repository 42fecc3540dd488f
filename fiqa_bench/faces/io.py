"""Reading images as RGB uint8 arrays, with a reason for everything odd.

Pillow decodes every format; the image is fully loaded, so a truncated JPEG
fails here (Pillow raises) instead of turning silently grey.  Grayscale,
palette, CMYK, 16-bit and RGBA images are converted to RGB and the
conversion is reported as a note; they are still usable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageLoadError(ValueError):
    """An image could not be read; ``reason`` is a short machine-friendly label."""

    def __init__(self, path: Path, reason: str, detail: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}{': ' + detail if detail else ''}")


def load_rgb(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """The image at ``path`` as ``(H, W, 3)`` uint8 RGB, and notes on conversions.

    Raises:
        ImageLoadError: the file is missing, empty, not an image, or corrupt.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageLoadError(path, "unreadable file", str(err)) from err
    if size == 0:
        raise ImageLoadError(path, "empty file")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            notes: tuple[str, ...] = ()
            if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
                notes = (f"alpha channel dropped ({mode})",)
            elif mode in ("L", "1", "I", "I;16", "F"):
                notes = (f"grayscale converted to RGB ({mode})",)
            elif mode not in ("RGB",):
                notes = (f"converted to RGB from {mode}",)
            if mode in ("I", "I;16", "F"):
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
    if rgb.ndim != 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ImageLoadError(path, "image too small", f"shape {rgb.shape}")
    return np.ascontiguousarray(rgb), notes
