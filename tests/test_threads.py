"""Per-image native work in threads (fiqa_bench.pipeline.threads): the same numbers as one loop.

Each comparison runs both ways in this process on the same images, so it holds on any CPU.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from fiqa_bench.method import create_method
from fiqa_bench.pipeline import threads
from fiqa_bench.recognition import lbp
from conftest import random_texture


@pytest.mark.parametrize("n, threads_asked, parts", [(0, 4, 1), (1, 4, 1), (40, 4, 2), (100, 7, 6), (170, 17, 10)])
def test_in_threads_cuts_the_rows_in_order_evenly(n, threads_asked, parts):
    ranges = threads.in_threads(lambda rows: rows, n, threads=threads_asked)
    assert len(ranges) == parts  # at least MIN_ROWS_PER_THREAD rows per thread
    assert [i for r in ranges for i in range(n)[r]] == list(range(n))
    sizes = [r.stop - r.start for r in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_in_threads_gives_results_in_row_order_from_several_threads():
    seen: set[str] = set()

    def work(rows: slice) -> list[int]:
        seen.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough for the pool to hand the other ranges to other threads
        return list(range(rows.start, rows.stop))

    out = threads.in_threads(work, 100, threads=4)
    assert [i for part in out for i in part] == list(range(100)) and len(out) == 4
    assert len(seen) > 1 and all(name.startswith("fiqa-rows") for name in seen)
    seen.clear()
    assert threads.in_threads(work, threads.MIN_ROWS_PER_THREAD * 2 - 1, threads=4) == [list(range(31))]
    assert seen == {threading.current_thread().name}  # too few rows: inline


@pytest.fixture()
def three_threads(monkeypatch):
    monkeypatch.setattr(threads, "default_workers", lambda: 3)


def _chips(n: int, size: int) -> np.ndarray:
    """``n`` RGB uint8 ``size x size`` chips of blurred random texture, blurred differently."""
    return np.stack([cv2.GaussianBlur(cv2.resize(random_texture(seed, size + 8), (size, size)), (5, 5), 0.5 + seed % 4)
                     for seed in range(n)])


def test_brisque_in_threads_equals_one_object_in_one_loop(three_threads):
    method = create_method("brisque")
    chips = _chips(3 * threads.MIN_ROWS_PER_THREAD, 150)
    one = method._new_brisque()
    expected = [one.compute(np.ascontiguousarray(chip[:, :, ::-1]))[0] for chip in chips]
    np.testing.assert_array_equal(method.native_score(chips), expected)
    assert method.native_score(chips[:0]).shape == (0,)


def test_lbp_codes_in_threads_equal_one_loop(three_threads):
    grey = lbp.to_grey(_chips(3 * threads.MIN_ROWS_PER_THREAD, lbp.CHIP_SIZE))
    radius = lbp.DEFAULT_RADIUS
    padded = np.pad(grey, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    expected = [lbp.local_binary_pattern(image, lbp.POINTS, radius, method="nri_uniform")[radius:-radius, radius:-radius]
                for image in padded]
    np.testing.assert_array_equal(lbp.lbp_codes(grey, radius), np.stack(expected))
