"""Benchmarks of lesson 3 (the reverse chain): medians of repeated runs, wall and CPU time.

Targets (issue 5, 2 CPU cores): a 1,000-step 2D chain of 2,000 points in <= 1.5 s; the step slider
answering in <= 250 ms (median; here: a page rerun under AppTest after moving it); the MNIST first
view (DDIM, 20 steps) <= 5 s, the full chain with bounded memory. CPU time is printed beside wall
time because the machine is shared: on a busy machine wall time overstates what a user sees.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _median(fn, repeats: int = 3):
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def run() -> list[str]:
    from lessons import reverse_chain as L
    from lessons.figures import payload_bytes
    from toy_models.gmm import default_gmm
    from toy_models.schedules import make_schedule

    torch.set_num_threads(2)
    lines = []
    g, s = default_gmm(), make_schedule("linear", 1000)
    m = L.MixtureEpsModel(g, s)
    for n in (1000, 2000):
        w, c, run_ = _median(lambda: L.ddpm_chain(m, s, n, 0))
        lines.append(
            f"reverse_chain: exact 2D DDPM chain, 1000 steps x {n} points: {w:.2f} s wall, {c:.2f} s CPU "
            f"(target <= 1.5 s for 2000); stored {(run_.xs.nbytes + run_.pred_x0.nbytes) / 1e6:.1f} MB"
        )
    w, c, fig = _median(lambda: L.fig_chain_step(run_, s, 500, "exact"), 5)
    lines.append(
        f"reverse_chain: one step figure (2000 points + arrows): build {w * 1e3:.0f} ms, "
        f"{payload_bytes(fig) / 1e3:.0f} kB"
    )
    w, c, fig = _median(lambda: L.fig_chain_animation(run_, "exact"), 3)
    lines.append(
        f"reverse_chain: play animation (40 frames x 300 points): build {w * 1e3:.0f} ms, "
        f"{payload_bytes(fig) / 1e3:.0f} kB"
    )
    w, c, _ = _median(lambda: L.reverse_step(g, s, 2, 0.5, [0.0, 0.0]), 5)
    lines.append(f"reverse_chain: exact q(x_t-1 | x_t) + Gaussian fit + KL on a 90x90 grid: {w * 1e3:.0f} ms")
    w, c, _ = _median(lambda: L.kl_vs_steps(g, s, 0.5, [0.0, 0.0]), 3)
    lines.append(
        f"reverse_chain: KL-vs-step-size curve (10 T values x 9 points, quadrature): {w:.2f} s wall, {c:.2f} s CPU"
    )
    lines += _page_lines()
    lines += _mnist_lines()
    return lines


def _page_lines() -> list[str]:
    """First view and step-slider reruns of the page under AppTest (no browser; cache cleared first)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "views" / "reverse_chain.py"), default_timeout=300)
    w = time.perf_counter()
    at.run()
    first = time.perf_counter() - w
    slider = [x for x in at.slider if x.label.startswith("reverse step")][0]
    times = []
    for t in (900, 700, 500, 300, 100, 10):
        slider.set_value(t)
        w = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - w)
    return [
        f"reverse_chain: page first view (AppTest, cold caches): {first:.2f} s",
        f"reverse_chain: step slider rerun (AppTest, median of 6): {statistics.median(times) * 1e3:.0f} ms "
        f"(target <= 250 ms in the browser)",
    ]


def _mnist_lines() -> list[str]:
    from lessons import reverse_chain as L

    try:
        from toy_models.checkpoints import load_checkpoint

        ck = load_checkpoint("mnist")
    except (ImportError, ValueError) as e:
        return [f"reverse_chain: MNIST skipped ({str(e).splitlines()[0][:120]})"]
    labels = np.arange(8) % 10
    w, c, ch = _median(lambda: L.digit_chain(ck.model, ck.schedule, labels, 0, "ddim", 20), 3)
    out = [f"reverse_chain: MNIST DDIM 20 steps, 8 digits: {w:.2f} s wall, {c:.2f} s CPU (target first view <= 5 s)"]
    w, c, ch = _median(lambda: L.digit_chain(ck.model, ck.schedule, labels, 0, "ddpm", None), 1)
    out.append(
        f"reverse_chain: MNIST DDPM all {ck.schedule.T} steps, 8 digits: {w:.1f} s; stored {len(ch.ts)} "
        f"states as uint8 = {ch.nbytes / 1e6:.2f} MB (bound: 2 x 101 x B x 784 bytes)"
    )
    return out


if __name__ == "__main__":
    for line in run():
        print(line)
