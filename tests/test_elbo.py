"""The pieces of the variational bound against Monte Carlo, brute force and closed forms."""

import math

import pytest
import torch

from toy_models import diffusion as D
from toy_models import elbo as E
from toy_models.schedules import make_schedule


def test_normal_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    m1, lv1, m2, lv2 = torch.tensor(0.3), torch.tensor(-0.5), torch.tensor(-0.4), torch.tensor(0.7)
    x = m1 + torch.exp(0.5 * lv1) * torch.randn(400_000, generator=g, dtype=torch.float64)
    mc = (E.gaussian_log_likelihood(x, m1, lv1) - E.gaussian_log_likelihood(x, m2, lv2)).mean()
    assert E.normal_kl(m1, lv1, m2, lv2).item() == pytest.approx(mc.item(), abs=0.005)
    assert E.normal_kl(m1, lv1, m1, lv1).item() == pytest.approx(0.0, abs=1e-12)


def test_gaussian_log_likelihood_is_the_normal_density():
    x, m, lv = torch.tensor(0.2), torch.tensor(-1.0), torch.tensor(math.log(0.3))
    ref = torch.distributions.Normal(m, math.sqrt(0.3)).log_prob(x)
    assert E.gaussian_log_likelihood(x, m, lv).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize(
    "mean, log_scale", [(0.0, math.log(0.1)), (0.93, math.log(0.02)), (-1.2, math.log(0.5)), (0.3, math.log(1e-3))]
)
def test_discretized_likelihood_sums_to_one_over_256_bins(mean, log_scale):
    values = (torch.arange(256, dtype=torch.float64) / 127.5) - 1.0
    lp = E.discretized_gaussian_log_likelihood(
        values, torch.tensor(mean, dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)
    )
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)


def test_discretized_likelihood_equals_bin_probability():
    x = torch.tensor(2 * 100 / 255 - 1, dtype=torch.float64)
    mean, sd = 0.1, 0.05
    cdf = lambda v: 0.5 * math.erfc(-(v - mean) / (sd * math.sqrt(2)))  # independent, in plain floats
    p = cdf(x.item() + 1 / 255) - cdf(x.item() - 1 / 255)
    lp = E.discretized_gaussian_log_likelihood(
        x, torch.tensor(mean, dtype=torch.float64), torch.tensor(math.log(sd), dtype=torch.float64)
    )
    assert lp.item() == pytest.approx(math.log(p), rel=1e-9)


class _ScaledOracle(torch.nn.Module):
    """An eps-model with a known error: eps_theta = true eps + delta."""

    parameterization = "eps"

    def __init__(self, s, x0, delta):
        super().__init__()
        self.s, self.x0, self.delta = s, x0, delta

    def forward(self, x_t, t, y=None):
        return D.predict_eps_from_x0(self.s, x_t, t, self.x0) + self.delta


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_vb_term_is_weighted_eps_mse_plus_constant(variance):
    """Ho et al. eq. 12: L_{t-1} = lambda_t ||eps - eps_theta||^2 + D c_t, for every t >= 2."""
    s = make_schedule("linear", 200, beta_start=1e-3, beta_end=0.05)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    delta = 0.1 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    model = _ScaledOracle(s, x0, delta)
    lam, c = E.vb_weights(s, variance)
    for t in (2, 7, 100, 200):
        got = E.vb_term(s, model, x0, t, variance=variance, generator=g)
        want = lam[t] * (delta**2).sum(1) + 3 * c[t]
        assert torch.allclose(got, want, rtol=1e-7, atol=1e-10)
    assert (c[2:] >= 0).all() and (c[2:] > 0).any() == (variance == "beta")


def test_l_simple_is_the_eps_mse():
    s = make_schedule("cosine", 50)
    x0 = torch.randn(4, 2, dtype=torch.float64)
    delta = torch.full((4, 2), 0.5, dtype=torch.float64)
    assert torch.allclose(
        E.l_simple(s, _ScaledOracle(s, x0, delta), x0, 10), torch.full((4,), 0.5, dtype=torch.float64), atol=1e-9
    )


def test_prior_term_closed_form():
    s = make_schedule("linear", 1000)
    x0 = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    abar = s.alphas_cumprod[-1].item()
    want = 2 * 0.5 * (abar * 1.0 + (1 - abar) - 1 - math.log(1 - abar))
    assert E.prior_kl(s, x0).item() == pytest.approx(want, rel=1e-9)


def test_elbo_terms_sum_and_units_and_monte_carlo_agrees():
    s = make_schedule("linear", 40, beta_start=1e-3, beta_end=0.3)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(200, 2, generator=g, dtype=torch.float64)
    model = _ScaledOracle(s, x0, 0.05)
    calls = []
    terms = E.elbo_terms(s, model, x0, generator=g, progress=lambda d, n: calls.append(d))
    assert calls == list(range(1, 41))
    assert terms.terms.shape == (40, 200)
    assert torch.allclose(terms.total, terms.prior + terms.terms.sum(0))
    assert terms.bits_per_dim(terms.total).mean().item() == pytest.approx(terms.total.mean().item() / (2 * math.log(2)))
    est = E.elbo_monte_carlo(s, model, x0, n_t=20, generator=g)
    assert abs(est.mean - terms.total.mean().item()) < 4 * est.stderr + 0.05
    with pytest.raises(ValueError, match="data_kind"):
        E.vb_term(s, model, x0, 3, data_kind="audio")
