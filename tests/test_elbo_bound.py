"""The variational bound of Ho et al. (2020, eq. 5) against the exact likelihood of Gaussian-mixture data.

With the exact eps-model (toy_models.gmm.AnalyticModel) and x_0 ~ q, averaged over data:
E_q[-ELBO] = E_q[-log q(x_0)] + KL(q(x_{0:T}) || p(x_{0:T})) >= the true NLL, and the gap is the
price of Gaussian reverse steps, which shrinks as the steps get smaller (T larger, same cosine family).
"""

import math

import pytest
import torch

from toy_models.elbo import elbo_terms, prior_kl, vb_term, vb_weights
from toy_models.gmm import AnalyticModel, default_gmm, true_nll
from toy_models.schedules import make_schedule

N_DATA = 1500


@pytest.fixture(scope="module")
def data():
    g = default_gmm()
    x0, _ = g.sample(N_DATA, torch.Generator().manual_seed(1))
    return g, x0, true_nll(g, x0)


def _gap(g, x0, nll, T, variance, seed=2):
    """(mean, standard error) over the data of -ELBO(x_0) - (-log q(x_0)), in nats; and the terms."""
    s = make_schedule("cosine", T)
    et = elbo_terms(s, AnalyticModel(g, s), x0, variance=variance, generator=torch.Generator().manual_seed(seed))
    d = et.total - nll
    return d.mean().item(), d.std().item() / math.sqrt(len(d)), et


@pytest.fixture(scope="module")
def gaps_beta(data):
    g, x0, nll = data
    return {T: _gap(g, x0, nll, T, "beta") for T in (10, 100, 1000)}


@pytest.mark.slow
def test_bound_holds_and_tightens_as_T_grows(gaps_beta):
    # one-sided, 4 standard errors: E[gap] >= 0 is a theorem, so only Monte Carlo can push it below 0
    for T, (gap, se, _) in gaps_beta.items():
        assert gap > -4 * se, f"T={T}: -ELBO below the true NLL by {-gap:.3f} nats (se {se:.3f})"
    (g10, s10, _), (g100, s100, _), (g1000, s1000, _) = (gaps_beta[T] for T in (10, 100, 1000))
    assert g10 > 3 * s10, "ten big Gaussian steps: the bound must be visibly loose"
    assert g10 - g100 > 3 * math.hypot(s10, s100), (g10, g100)
    assert g10 - g1000 > 3 * math.hypot(s10, s1000), (g10, g1000)
    assert abs(g1000) < 3 * s1000 + 0.1, "a thousand small steps with the exact model: nearly tight"


def test_bound_holds_with_beta_tilde(data):
    g, x0, nll = data
    for T in (10, 100):
        gap, se, _ = _gap(g, x0, nll, T, "beta_tilde")
        assert gap > 3 * se, (T, gap, se)


@pytest.mark.slow
def test_beta_tilde_stays_loose_on_data_with_spread(data, gaps_beta):
    """sigma_t^2 = beta-tilde_t is the right reverse variance only where the data look like points
    (1 - abar_t >> the components' variance). Near t = 0 a cosine (or linear) schedule has
    1 - abar_t roughly proportional to t for every T, so beta_t / beta-tilde_t ~ t / (t - 1) and the
    per-step KLs ~ 1 / t^2 add up to a T-independent gap: here about 1 nat even at T = 1000, while
    sigma_t^2 = beta_t (right where the data have spread) is nearly tight."""
    g, x0, nll = data
    gap, se, _ = _gap(g, x0, nll, 1000, "beta_tilde")
    g_beta, se_beta, _ = gaps_beta[1000]
    assert gap > 0.5 and gap - g_beta > 3 * math.hypot(se, se_beta), (gap, g_beta)


@pytest.mark.slow
def test_terms_sum_to_total(gaps_beta):
    _, _, et = gaps_beta[1000]
    assert et.terms.shape == (1000, N_DATA) and et.prior.shape == (N_DATA,)
    assert torch.allclose(et.total, et.prior + et.terms.sum(0), atol=1e-9)
    assert torch.isfinite(et.terms).all()


def test_each_term_is_the_closed_form(data):
    """L_T by its closed form; L_{t-1} (t >= 2) = lambda_t ||eps - eps*||^2 + D c_t (Ho et al. eq. 12)."""
    g, x0, _ = data
    s = make_schedule("cosine", 20)
    model = AnalyticModel(g, s)
    a_T = s.alphas_cumprod[s.T]
    prior = 0.5 * (a_T * x0**2 + (1 - a_T) - 1 - torch.log(1 - a_T)).sum(1)
    assert torch.allclose(prior_kl(s, x0), prior, atol=1e-12)
    for variance in ("beta", "beta_tilde"):
        lam, c = vb_weights(s, variance)
        for t in (2, 9, 20):
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t), dtype=x0.dtype)
            term = vb_term(s, model, x0, t, variance=variance, noise=noise)
            x_t = s.alphas_cumprod[t].sqrt() * x0 + (1 - s.alphas_cumprod[t]).sqrt() * noise
            eps_star = model(x_t, torch.full((N_DATA,), float(t), dtype=x0.dtype))
            ref = lam[t] * ((noise - eps_star) ** 2).sum(1) + 2 * c[t]
            assert torch.allclose(term, ref, rtol=1e-8, atol=1e-10), (variance, t)
