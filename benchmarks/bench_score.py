"""Score lesson figures: vector fields at a new t, the 60 x 60 ODE density heatmap, and the exact
model's ODE NLL against the closed form. Targets (issue 7, 2 CPU cores): fields <= 250 ms, heatmap
<= 10 s, NLL within 0.02 nats."""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks import median_seconds as _median_s
from lessons import score as L
from toy_models.gmm import AnalyticModel, default_gmm
from toy_models.schedules import make_schedule


def _learned(s):
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        ck = load_checkpoint("gmm")
    except CheckpointError:
        return None
    return L.OnSchedule(ck.model, ck.schedule, s)


def run() -> list[str]:
    s = make_schedule("linear", 1000)
    g = default_gmm()
    exact = AnalyticModel(g, s)
    learned = _learned(s)
    model = learned if learned is not None else exact
    name = "learned gmm" if learned is not None else "exact (no gmm weights)"
    ts = iter(range(3, 1000, 37))  # a new t every call: nothing cached
    lines = [
        f"fields at a new t ({name}, 21x21 grid + 1000 draws): "
        f"{1000 * _median_s(lambda: L.compare_fields(model, exact, s, next(ts), 21, 1000)):8.1f} ms  (target <= 250)"
    ]
    em = L.exact_ode_model(g, s)
    t0 = time.perf_counter()
    _, r = L.density_grid(em, s, 60, 1e-4)
    lines.append(
        f"60x60 ODE density heatmap, exact model, rtol 1e-4: {time.perf_counter() - t0:8.2f} s, "
        f"{r.nfe} NFE  (target <= 10 s)"
    )
    if learned is not None:
        t0 = time.perf_counter()
        _, r = L.density_grid(learned, s, 60, 1e-4)
        lines.append(
            f"60x60 ODE density heatmap, learned gmm, rtol 1e-4: {time.perf_counter() - t0:8.2f} s, {r.nfe} NFE"
        )
    x = g.sample(64, torch.Generator().manual_seed(0))[0]
    t0 = time.perf_counter()
    o = L.ode_log_px(em, s, x, rtol=1e-5)
    err = np.abs(o.log_px - g.log_prob(x).numpy())
    lines.append(
        f"ODE NLL of the exact model, 64 points, rtol 1e-5: max |error| {err.max():.4f} nats, mean error "
        f"{(o.log_px - g.log_prob(x).numpy()).mean():+.4f} nats, {o.nfe} NFE, "
        f"{time.perf_counter() - t0:.1f} s  (target <= 0.02 nats)"
    )
    return lines
