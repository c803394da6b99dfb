"""Benchmarks: `make bench` (python -m benchmarks) prints speed and memory figures.

Each module `bench_<area>.py` defines `run() -> list[str]`: lines of figures (medians of
repeated runs, with the ratio to the target where there is one). They are measurements, not
tests: these machines are shared and noisy, so nothing here fails a build. The header line names the
CPU and times two fixed reference workloads (`calibration()`): the same code runs 2-3x slower on one
2-core machine than on another, so compare figures within a run, or scale by the reference times.
"""

import os
import platform
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


def sw_over_floor(data: str, n: int = 2000, sets: int = 3, seed: int = 0):
    """A 2D sample-quality check: ratio(sample) is the SW of `sets` sample sets to as many held-out data
    draws, averaged, over the noise floor (`evaluate`'s measure with fewer sets). sample(x_T, k) draws set k
    from its fixed starting noise x_T (n, 2); the floor, the data and the x_T are made once here.

    Several sets, because the SW of 2,000 points spreads by ~30% of its mean: one set crosses a threshold
    early or late by luck."""
    import torch

    from toy_models.data import sample_2d
    from toy_models.metrics import noise_floor, sliced_wasserstein

    floor = noise_floor(lambda k, sd: sample_2d(data, k, seed=1000 + sd)[0].numpy(), n)
    refs = [sample_2d(data, n, seed=999 - k)[0].numpy() for k in range(sets)]
    x_Ts = [torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 7 + 100 * k)) for k in range(sets)]

    def ratio(sample) -> float:
        return (
            statistics.fmean(
                sliced_wasserstein(sample(x_T, k).numpy(), ref) for k, (x_T, ref) in enumerate(zip(x_Ts, refs))
            )
            / floor
        )

    return ratio


def cpu_name() -> str:
    """The CPU's model name and the vector extensions that decide torch's speed here."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'})" if flags else name


def calibration() -> str:
    """Two fixed workloads, for comparing runs on different machines: a pure-Python loop (the interpreter:
    Streamlit's reruns, figure building) and 1,000 small float32 matmuls + SiLU (a 2D MLP layer on 2,000
    points: the samplers). Median of 3 each."""
    import torch

    def py_loop():
        s = 0
        for i in range(3_000_000):
            s += i

    x, w = torch.randn(2000, 32), torch.randn(32, 32)

    def small_ops():
        for _ in range(1000):
            torch.nn.functional.silu(x @ w)

    return (
        f"calibration: 3M-step Python loop {median_seconds(py_loop):.2f} s; 1,000 x silu((2000x32) @ (32x32)) "
        f"{median_seconds(small_ops):.2f} s ({os.cpu_count()} cores)"
    )
