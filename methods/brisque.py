"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy and Bovik, IEEE TIP 2012).

Natural-scene statistics of the grey image at two scales: the mean-subtracted
contrast-normalised coefficients

    MSCN(i, j) = (I(i, j) - mu(i, j)) / (sigma(i, j) + C)

(Gaussian-weighted local mean and deviation) are fitted with a generalised
Gaussian, and their products along four orientations with asymmetric
generalised Gaussians: 18 features per scale, 36 in all, scaled to [-1, 1]
and mapped by an epsilon-SVR (RBF kernel) trained on the LIVE IQA database
to a score that grows with distortion (about 0-100).  Native output: that
score, **lower is better**; quality = its negative.

Implementation: OpenCV contrib's ``cv2.quality.QualityBRISQUE`` (the
maintained implementation; the model and range files it needs are the
LIVE-trained ones under ``<data root>/brisque-live/``, read from there and
never copied).  The image it sees is the **aligned face chip** (default
``dlib150``: 150x150, the face with dlib's padding), converted to BGR as
OpenCV expects; OpenCV turns it grey itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fiqa_bench.faces.templates import get_template
from fiqa_bench.pipeline.hashing import sha256_file
from fiqa_bench.method import METHODS, MethodCard, QualityMethod
from fiqa_bench.pipeline.paths import default_data_root
from fiqa_bench.pipeline.threads import in_threads

MODEL_FILE, RANGE_FILE = "brisque_model_live.yml", "brisque_range_live.yml"


def brisque_files(model_dir: str | Path | None = None) -> tuple[Path, Path]:
    """The LIVE model and range files: ``model_dir`` or ``<data root>/brisque-live``; a clear error if absent."""
    folder = Path(model_dir) if model_dir else default_data_root() / "brisque-live"
    files = folder / MODEL_FILE, folder / RANGE_FILE
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"BRISQUE needs its LIVE-trained model files, missing: {', '.join(missing)} "
                                f"(set --set model_dir=FOLDER, or --data-root / $FIQA_BENCH_DATA to a root "
                                f"holding brisque-live/)")
    return files


class BRISQUE(QualityMethod):
    """BRISQUE on the aligned chip with the LIVE-trained SVR (native: lower = better).

    Args:
        template: the chip template it reads.
        model_dir: folder holding ``brisque_model_live.yml`` and ``brisque_range_live.yml``.
    """

    def __init__(self, template: str = "dlib150", model_dir: str | None = None) -> None:
        get_template(template)
        self.model_file, self.range_file = brisque_files(model_dir)
        self._digests = (sha256_file(self.model_file), sha256_file(self.range_file))
        self._new_brisque()  # fails here, naming the files, if OpenCV cannot read them
        self.card = MethodCard(name="brisque", paper="A. Mittal, A. K. Moorthy, A. C. Bovik, No-Reference Image "
                               "Quality Assessment in the Spatial Domain, IEEE TIP 21(12), 2012",
                               higher_is_better=False, needs=f"chips:{template}", trained=False,
                               weights=f"{MODEL_FILE} (LIVE, via OpenCV contrib)", weights_sha256=self._digests[0])

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"files": self._digests, "opencv": cv2.__version__}

    def native_score(self, chips: np.ndarray) -> np.ndarray:
        """One OpenCV BRISQUE score per chip, computed in threads (:func:`in_threads`; OpenCV releases the GIL)."""
        return np.concatenate(in_threads(lambda rows: self._scores(chips[rows]), len(chips)))

    def _scores(self, chips: np.ndarray) -> np.ndarray:
        # an OpenCV quality object keeps its last quality map, so each thread has its own
        brisque = self._new_brisque()
        return np.array([brisque.compute(np.ascontiguousarray(chip[:, :, ::-1]))[0] for chip in chips],
                        dtype=np.float64)

    def _new_brisque(self) -> "cv2.quality.QualityBRISQUE":
        return cv2.quality.QualityBRISQUE_create(str(self.model_file), str(self.range_file))


METHODS.add("brisque", BRISQUE, description="BRISQUE (IEEE TIP 2012), LIVE-trained SVR via OpenCV contrib, "
            "on the aligned chip")
