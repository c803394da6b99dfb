"""Lesson 4 (the bound) figures: the term-by-term bound over every step for the exact model and a 2D
network (2,000 points, T = 1000), the strided network bound the page uses, and the estimator comparison."""

from __future__ import annotations

import torch

from benchmarks import median_seconds as _median_seconds
from lessons import elbo_lesson as L
from toy_models.gmm import AnalyticModel, default_gmm
from toy_models.schedules import make_schedule


def _network():
    """The shipped 'moons' model if present, else an untrained network of the same recipe (same cost)."""
    try:
        from toy_models.checkpoints import load_checkpoint

        ck = load_checkpoint("moons")
        return ck.model, ck.schedule, "shipped moons"
    except Exception:  # noqa: BLE001 - any missing/broken checkpoint: time the same architecture
        from toy_models import networks
        from toy_models.recipes import RECIPES

        r = RECIPES["moons"]
        return (
            networks.build_network(r.network, r.network_config).eval(),
            make_schedule("linear", 1000),
            "untrained moons-recipe MLP",
        )


def run() -> list[str]:
    lines = []
    s = make_schedule("linear", 1000)
    gmm = default_gmm()
    x0 = gmm.sample(2000, generator=torch.Generator().manual_seed(0))[0]
    m = AnalyticModel(gmm, s)
    t = _median_seconds(lambda: L.bound_terms(s, m, x0), 3)
    lines.append(f"elbo: exact-model bound, 2,000 points x 1,000 steps: {t:.2f} s (median of 3; target <= 3 s)")
    t = _median_seconds(lambda: L.bound_terms(s, m, x0[:1000]), 3)
    lines.append(f"elbo: exact-model bound, 1,000 points x 1,000 steps (the page's first view): {t:.2f} s")
    net, sn, what = _network()
    xf = x0.float()
    t = _median_seconds(lambda: L.bound_terms(sn, net, xf[:500], stride=10), 3)
    lines.append(f"elbo: {what} bound, 500 points, every 10th of 1,000 steps (page default): {t:.2f} s")
    t = _median_seconds(lambda: L.bound_terms(sn, net, xf), 1)
    lines.append(f"elbo: {what} bound, 2,000 points x 1,000 steps (exact sum): {t:.2f} s (1 run)")
    t = _median_seconds(lambda: L.compare_estimators(s, m, x0[0], n=2000), 3)
    c = L.compare_estimators(s, m, x0[0], n=2000)
    c2 = L.compare_estimators(s, m, x0[0], n=2000, t_fixed=500)
    lines.append(
        f"elbo: 2 x 2,000 estimates at one x_0: {t:.3f} s; std naive/rearranged {c.ratio:.2f}x (random t), "
        f"{c2.ratio:.1f}x (t = 500)"
    )
    b = L.bound_vs_T(gmm, s, [10, 100, 1000], x0[:400], variance="beta")
    lines.append(
        "elbo: exact model, sigma^2 = beta, gap bound - true NLL at T = 10/100/1000: "
        + "/".join(f"{g:.3f}" for g in b.gap)
        + " nats"
    )
    lines += _mnist_lines()
    return lines


def _mnist_lines() -> list[str]:
    """The MNIST bound as the page computes it by default: 64 held-out digits, the first EXACT_HEAD t exact, then
    every 20th."""
    from toy_models.checkpoints import CheckpointError, load_checkpoint
    from toy_models.data import load_mnist

    try:
        ck = load_checkpoint("mnist")
    except CheckpointError as e:
        return [f"elbo: MNIST skipped ({e})"]
    x0, y = load_mnist().held_out(64)[0], torch.full((64,), 10)  # the null label: the unconditional p(x)
    r = None

    def bound():
        nonlocal r
        r = L.bound_terms(ck.schedule, ck.model, x0, y=y, data_kind="image8bit", stride=20, chunk_elements=200_000)

    t = _median_seconds(bound, 1)
    return [
        f"elbo: MNIST bound, 64 held-out digits, t <= {L.EXACT_HEAD} exact + every 20th t ({len(r.terms)} rows): "
        f"{t:.1f} s (target <= 30 s), {r.bits_per_dim(r.total):.3f} bits/dim"
    ]


if __name__ == "__main__":
    torch.set_num_threads(2)
    print("\n".join(run()))
