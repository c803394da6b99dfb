"""Ground-truth figures: exact score / density / eps* for the 2D mixture, a point set, and 5,000 digits."""

from __future__ import annotations

import statistics
import time

import torch

from toy_models.elbo import elbo_terms
from toy_models.gmm import AnalyticModel, EmpiricalDistribution, GaussianMixture, default_gmm, reverse_conditional
from toy_models.schedules import make_schedule


def _median_ms(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run() -> list[str]:
    gen = torch.Generator().manual_seed(0)
    g = default_gmm()
    x, _ = g.sample(2000, gen)
    axis = torch.linspace(-3, 3, 60, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)  # (3600, 2)
    s = make_schedule("cosine", 1000)
    model = AnalyticModel(g, s)
    t = torch.full((2000,), 500.0)
    points = GaussianMixture.from_points(x)
    digits = EmpiricalDistribution(torch.rand(5000, 1, 28, 28, generator=gen, dtype=torch.float64) * 2 - 1)
    noisy = torch.randn(64, 1, 28, 28, generator=gen, dtype=torch.float64)
    x600 = x[:600]
    s100 = make_schedule("cosine", 100)
    m100 = AnalyticModel(g, s100)
    return [
        f"gmm score, 2000 points:                 {_median_ms(lambda: g.score(x, 0.5)):8.2f} ms",
        f"gmm log_prob, 60x60 grid:               {_median_ms(lambda: g.log_prob(grid, 0.5)):8.2f} ms",
        f"AnalyticModel eps*, 2000 points:        {_median_ms(lambda: model(x.float(), t)):8.2f} ms",
        f"from_points(2000) score, 60x60 grid:    {_median_ms(lambda: points.score(grid, 0.5), 3):8.2f} ms",
        f"EmpiricalDistribution(5000 x 784) score of 64 images: "
        f"{_median_ms(lambda: digits.score(noisy, 0.5), 3):8.2f} ms",
        f"reverse_conditional (one point):        {_median_ms(lambda: reverse_conditional(g, s, x[0], 500)):8.2f} ms",
        f"elbo_terms, T=100, 600 points, exact model: {_median_ms(lambda: elbo_terms(s100, m100, x600), 3):8.1f} ms",
    ]
