"""Conditional generation and inpainting figures: a 2D guidance-scale redraw (the page's default work:
300 points, 40 DDIM steps, exact mixture model), a 16-digit MNIST grid at a new scale (20 DDIM steps;
the shipped weights, or a random-init network of the same recipe when they are missing), and
2D replacement inpainting. Medians of repeated runs."""

from __future__ import annotations

import torch

from benchmarks import median_seconds as _median_s
from lessons import conditional as C
from lessons import inpainting as I
from toy_models.gmm import AnalyticModel, default_gmm
from toy_models.schedules import make_schedule


def _mnist(name: str):
    """(model, schedule, what) from the shipped weights, else a random-init network of the recipe."""
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        ld = load_checkpoint(name)
        return ld.model, ld.schedule, "shipped weights"
    except CheckpointError:
        from toy_models.networks import build_network
        from toy_models.recipes import RECIPES

        r = RECIPES[name]
        return build_network(r.network, dict(r.network_config)).eval(), make_schedule("linear", 1000), "random init"


def run() -> list[str]:
    g, s = default_gmm(), make_schedule("linear", 1000)
    model, clf = AnalyticModel(g, s), C.ExactNoisyClassifier(g, s)
    out = []
    w = iter([2.0, 2.5, 3.0, 3.5, 4.0])
    t = _median_s(lambda: C.guided_trajectory(C.cfg_model(model, next(w), 5), s, 0, 300, 0, 40, stride=2))
    out.append(
        f"conditional: 2D classifier-free redraw at a new scale (300 pts, 40 DDIM steps, exact model): {t:.2f} s"
    )
    t = _median_s(lambda: C.guided_trajectory(C.cg_model(model, clf, 3.0, s), s, 0, 300, 0, 40, stride=2))
    out.append(f"conditional: 2D classifier-guided redraw (300 pts, 40 DDIM steps, exact classifier): {t:.2f} s")
    t = _median_s(lambda: I.inpaint_2d(model, s, 0.5, 400, 0, 50, 1, stride=5), repeats=2)
    out.append(f"inpainting: 2D replacement (400 pts, 50 steps, r = 1): {t:.2f} s")
    unet, su, what = _mnist("mnist")
    labels = torch.full((16,), 3)
    w = iter([2.0, 3.0, 4.0])
    t = _median_s(lambda: C.mnist_samples(C.cfg_model(unet, next(w), 10), su, labels, 0, 20))
    out.append(f"conditional: MNIST 16 digits at a new CFG scale (20 DDIM steps, {what}): {t:.2f} s")
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    for line in run():
        print(line)
