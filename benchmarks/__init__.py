"""Benchmarks: `make bench` (python -m benchmarks) prints speed and memory figures.

Each module `bench_<area>.py` defines `run() -> list[str]`: lines of figures (medians of
repeated runs, with the ratio to the target where there is one). They are measurements, not
tests: these machines are shared and noisy, so nothing here fails a build.
"""
