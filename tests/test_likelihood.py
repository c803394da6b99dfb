"""ODE log-likelihood against closed forms: Gaussian data, the exact Gaussian mixture, 8-bit bins."""

import math

import pytest
import torch

from toy_models.likelihood import (
    dequantize_8bit,
    divergence_exact,
    divergence_hutchinson,
    make_probes,
    ode_log_likelihood,
    standard_normal_logp,
)
from toy_models.schedules import make_schedule

S = make_schedule("linear", 1000)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny ops on a shared 2-core machine
    yield
    torch.set_num_threads(n)


class GaussianEps:
    """Exact eps for data N(m, diag(v)) (any shape): q_t = N(sqrt(abar) m, abar v + 1 - abar). Differentiable."""

    parameterization = "eps"

    def __init__(self, m, v):
        self.m, self.v = torch.as_tensor(m, dtype=torch.float64), torch.as_tensor(v, dtype=torch.float64)

    def __call__(self, x, t, y=None):
        a = S.alpha_bar(t.to(torch.float64)).reshape(-1, *([1] * (x.ndim - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * self.m) / (a * self.v + 1 - a)

    def log_prob(self, x):
        d = -0.5 * (math.log(2 * math.pi) + torch.log(self.v) + (x - self.m) ** 2 / self.v)
        return d.reshape(x.shape[0], -1).sum(1)


class MixtureEps:
    """eps* = -sqrt(1 - abar) grad log q_t from gmm.score, differentiable in x (for the exact divergence)."""

    parameterization = "eps"

    def __init__(self, gmm):
        self.gmm = gmm

    def __call__(self, x, t, y=None):
        a = S.alpha_bar(t.to(torch.float64))
        return -(1 - a).sqrt()[:, None] * self.gmm.score(x, a)


def gen(seed):
    return torch.Generator().manual_seed(seed)


M, V = torch.tensor([0.5, -1.0]), torch.tensor([0.3, 1.5])


def test_gaussian_log_likelihood_to_1e_3():
    model = GaussianEps(M, V)
    x0 = M + V.sqrt() * torch.randn(16, 2, generator=gen(0), dtype=torch.float64)
    calls = []
    r = ode_log_likelihood(model, S, x0, progress=lambda done, total: calls.append(done / total))
    # the model's exact density: the flow keeps (x_t - sqrt(abar) m) / s_t fixed, s_t^2 = abar v + 1 - abar,
    # so x_T is an affine map of x_0 and log p(x_0) = log N(x_T; 0, I) + log |det dx_T / dx_0|
    aT = S.alphas_cumprod[-1]
    sT = (aT * V + 1 - aT).sqrt()
    x_T = aT.sqrt() * M + sT * (x0 - M) / V.sqrt()
    exact = standard_normal_logp(x_T) + torch.log(sT / V.sqrt()).sum()
    assert (r.x_T - x_T).abs().max() < 1e-3
    assert (r.log_px - exact).abs().max() < 1e-3
    # the data's density differs from it only by the prior's mismatch, N(0, I) vs q_T (abar_T = 4e-5)
    assert (r.log_px - model.log_prob(x0)).abs().max() < 0.03
    assert torch.allclose(r.log_px, r.prior_logp + r.delta_logp)
    assert torch.allclose(r.bits_per_dim, -r.log_px / (2 * math.log(2)))
    assert r.nfe == len(calls) > 10 and max(calls) == pytest.approx(1.0) and r.x_T.shape == x0.shape


def test_gmm_log_likelihood_within_002_nats():
    gmm_mod = pytest.importorskip("toy_models.gmm")
    g = gmm_mod.default_gmm()
    x0, _ = g.sample(24, gen(1))
    x0 = torch.cat([x0, torch.tensor([[0.0, 0.0], [2.0, -2.0]], dtype=torch.float64)])  # also off the modes
    r = ode_log_likelihood(MixtureEps(g), S, x0)
    err = (r.log_px - g.log_prob(x0)).abs()
    assert err.max() < 0.02, err


def test_hutchinson_probe_mean_matches_exact_divergence():
    A = torch.tensor([[1.0, 2.0, 0.0], [-1.5, 0.5, 3.0], [0.3, -2.0, -0.7]], dtype=torch.float64)
    x = torch.randn(4000, 3, dtype=torch.float64, generator=gen(2)).requires_grad_(True)
    f = x @ A.T + 0.1 * x**3  # a Jacobian with off-diagonal terms: single probes are noisy
    exact = divergence_exact(f, x)
    assert torch.allclose(exact, A.trace() + 0.3 * (x**2).sum(1))
    for kind in ("rademacher", "gaussian"):
        est = divergence_hutchinson(f, x, make_probes(x, 1, kind, gen(3)))
        d = (est - exact).detach()
        assert d.std() > 0.5  # each estimate is noisy...
        assert d.mean().abs() < 4 * d.std() / math.sqrt(len(d))  # ...but unbiased


@pytest.mark.slow
def test_hutchinson_log_likelihood_is_unbiased():
    gmm_mod = pytest.importorskip("toy_models.gmm")
    g = gmm_mod.default_gmm()
    point = torch.tensor([[0.3, 0.4]], dtype=torch.float64)
    x0 = point.expand(200, 2).clone()  # one point, 200 independent probes
    r = ode_log_likelihood(MixtureEps(g), S, x0, divergence="hutchinson", generator=gen(4), rtol=1e-4, atol=1e-4)
    truth = g.log_prob(point)[0]
    est = r.log_px
    assert est.std() > 0.01
    assert (est.mean() - truth).abs() < 4 * est.std() / math.sqrt(len(est)) + 0.02, (est.mean(), truth)


def test_image8bit_bits_per_dim_uses_dequantization_and_the_scale_jacobian():
    m = torch.zeros(1, 2, 2, dtype=torch.float64)
    v = torch.full((1, 2, 2), 0.3, dtype=torch.float64)
    model = GaussianEps(m, v)
    k = torch.randint(0, 256, (12, 1, 2, 2), generator=gen(5))
    x0 = (k.to(torch.float64) / 127.5 - 1).clamp(-1.5, 1.5)
    r = ode_log_likelihood(model, S, x0, data_kind="image8bit", generator=gen(6))
    x_deq = dequantize_8bit(x0, gen(6))
    assert (x_deq - x0).abs().max() <= 0.5 / 127.5 and not torch.equal(x_deq, x0)
    assert (r.log_px - model.log_prob(x_deq)).abs().max() < 1e-3
    D = 4
    expected = -(model.log_prob(x_deq) + D * math.log(1 / 127.5)) / (D * math.log(2))
    assert (r.bits_per_dim - expected).abs().max() < 1e-3
    # against the exact probability of each pixel's bin (width 2/255): a bound, and tight here
    sd = v.sqrt()
    phi = lambda z: 0.5 * (1 + torch.erf(z / math.sqrt(2)))  # noqa: E731
    p_bin = phi((x0 + 1 / 255 - m) / sd) - phi((x0 - 1 / 255 - m) / sd)
    true_bpd = -torch.log(p_bin).reshape(12, -1).sum(1) / (D * math.log(2))
    assert (r.bits_per_dim - true_bpd).abs().max() < 0.01
    assert r.bits_per_dim.mean() > true_bpd.mean() - 1e-3


def test_standard_normal_logp():
    z = torch.randn(5, 3, dtype=torch.float64, generator=gen(7))
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(standard_normal_logp(z), ref)


def test_bad_options_and_detached_models_raise():
    model = GaussianEps(M, V)
    x0 = torch.zeros(2, 2, dtype=torch.float64)
    for kw, word in [
        (dict(divergence="trace"), "divergence"),
        (dict(data_kind="audio"), "data_kind"),
        (dict(method="euler"), "method"),
        (dict(t_min=0.0), "t_min"),
        (dict(n_probes=0), "n_probes"),
        (dict(probe="sphere"), "probe"),
    ]:
        with pytest.raises(ValueError, match=word):
            ode_log_likelihood(model, S, x0, **kw)

    def detached(x, t, y=None):
        return model(x.detach(), t)

    with pytest.raises(ValueError, match="detached"):
        ode_log_likelihood(detached, S, x0)


def test_analytic_model_itself_gives_the_true_density_by_ode():
    """The exact GMM model, used like a network, integrates to log q(x_0) within 0.02 nats (issue target)."""
    from toy_models.gmm import AnalyticModel, default_gmm
    from toy_models.likelihood import ode_log_likelihood
    from toy_models.schedules import make_schedule

    s = make_schedule("linear", 1000)
    gmm = default_gmm()
    x, _ = gmm.sample(16, generator=torch.Generator().manual_seed(3))
    res = ode_log_likelihood(AnalyticModel(gmm, s), s, x.double())
    assert (res.log_px - gmm.log_prob(x.double())).abs().max().item() < 0.02
