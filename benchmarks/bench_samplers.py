"""Sampler figures: 2,000 points through 1,000 DDPM steps (exact GMM model, small MLP), and the 2D ODE NLL error."""
from __future__ import annotations

import time

import torch

from toy_models.likelihood import ode_log_likelihood
from toy_models.samplers import SamplerInfo, sample_ddim, sample_ddpm, sample_ode
from toy_models.schedules import make_schedule
from benchmarks import median_seconds as _median_s


def _mlp(width=128, n_blocks=3):
    """The project's MLP2D at width 128, 3 blocks (a throwaway plain MLP if networks.py is missing)."""
    try:
        from toy_models.networks import MLP2D, MLPConfig

        return MLP2D(MLPConfig(width=width, n_blocks=n_blocks)).eval()
    except ImportError:
        class Plain(torch.nn.Module):
            parameterization = "eps"

            def __init__(self):
                super().__init__()
                layers, d = [], 3
                for _ in range(n_blocks):
                    layers += [torch.nn.Linear(d, width), torch.nn.SiLU()]
                    d = width
                self.net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 2))

            def forward(self, x, t, y=None):
                return self.net(torch.cat([x, t[:, None] / 1000], 1))

        return Plain().eval()


def _gmm_model(s):
    """The exact model, and a differentiable eps* for the likelihood (AnalyticModel detaches x)."""
    from toy_models.gmm import AnalyticModel, default_gmm

    g = default_gmm()

    class MixtureEps:
        parameterization = "eps"

        def __call__(self, x, t, y=None):
            a = s.alpha_bar(t.to(torch.float64))
            return -(1 - a).sqrt()[:, None] * g.score(x, a)

    return g, AnalyticModel(g, s), MixtureEps()


def run() -> list[str]:
    s = make_schedule("linear", 1000)
    gen = torch.Generator().manual_seed(0)
    x64 = torch.randn(2000, 2, generator=gen, dtype=torch.float64)
    x32 = x64.float()
    g, exact, diffable = _gmm_model(s)
    mlp = _mlp()
    lines = [f"threads: {torch.get_num_threads()}"]
    t_ddpm_gmm = _median_s(lambda: sample_ddpm(exact, s, x64, generator=torch.Generator().manual_seed(1)))
    lines.append(f"DDPM 1000 steps, 2000 pts, exact GMM model (float64): {t_ddpm_gmm:7.2f} s")
    t_ddpm_mlp = _median_s(lambda: sample_ddpm(mlp, s, x32, generator=torch.Generator().manual_seed(1)))
    lines.append(f"DDPM 1000 steps, 2000 pts, MLP2D width 128 x 3 (float32): {t_ddpm_mlp:7.2f} s")
    t_ddim = _median_s(lambda: sample_ddim(mlp, s, x32, steps=50))
    lines.append(f"DDIM 50 steps, 2000 pts, same MLP: {t_ddim:7.3f} s")
    info = SamplerInfo()
    sample_ode(exact, s, x64, method="dopri5", info=info)
    lines.append(f"dopri5 (rtol=atol=1e-5) sampling, exact GMM model: {info.nfe} model evaluations")
    x0, _ = g.sample(200, torch.Generator().manual_seed(2))
    t0 = time.perf_counter()
    r = ode_log_likelihood(diffable, s, x0)
    dt = time.perf_counter() - t0
    err = (r.log_px - g.log_prob(x0)).abs()
    lines.append(f"ODE NLL vs exact log q(x0), 200 GMM points: mean |err| {err.mean():.2e} nats, max {err.max():.2e}, "
                 f"{r.nfe} NFE, {dt:.1f} s")
    return lines
