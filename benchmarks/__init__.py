"""Benchmarks: `make bench` (python -m benchmarks) prints speed and memory figures.

Each module `bench_<area>.py` defines `run() -> list[str]`: lines of figures (medians of
repeated runs, with the ratio to the target where there is one). They are measurements, not
tests: these machines are shared and noisy, so nothing here fails a build.
"""

import statistics
import time


def median_seconds(fn, repeats: int = 3) -> float:
    """Median wall time of `repeats` calls of fn(), in seconds (the figure every benchmark prints)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
