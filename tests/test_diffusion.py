"""Forward process, posterior and reverse step against closed forms and brute force."""

import math

import pytest
import torch

from toy_models import diffusion as D
from toy_models.schedules import make_schedule
from toy_models.shapes import as_timesteps, extract, shares_one_t


@pytest.fixture
def s():
    return make_schedule("linear", 100, beta_start=1e-3, beta_end=0.1)


def test_one_t_for_the_batch_is_known_without_comparing_entries():
    t = as_timesteps(37, 2000, dtype=torch.float32)  # what call_model passes a model for a sampler's int t
    assert t.shape == (2000,) and t.dtype == torch.float32 and t.stride(0) == 0 and float(t[5]) == 37.0
    assert shares_one_t(t)  # an expanded scalar: no comparison of 2,000 entries
    assert shares_one_t(torch.full((4,), 3.0)) and shares_one_t(torch.tensor([9]))
    assert not shares_one_t(torch.tensor([3.0, 3.0, 4.0]))
    assert as_timesteps(torch.tensor([1, 2]), 2, dtype=torch.float64).dtype == torch.float64


def test_extract_broadcasts_points_and_images(s):
    pts, imgs = torch.zeros(3, 2), torch.zeros(3, 1, 28, 28)
    t = torch.tensor([1, 50, 100])
    assert extract(s.betas, t, pts).shape == (3, 1)
    assert extract(s.betas, t, imgs).shape == (3, 1, 1, 1)
    assert extract(s.betas, t, imgs).dtype == torch.float32
    assert extract(s.betas, t, pts)[1, 0].item() == pytest.approx(s.betas[50].item(), rel=1e-6)
    with pytest.raises(ValueError, match="one entry per example"):
        extract(s.betas, torch.tensor([1, 2]), pts)
    with pytest.raises(ValueError, match="timesteps must lie in 0..100"):
        extract(s.betas, 101, pts)


def test_extract_of_one_int_t(s):
    """A sampler's int t gives coef[t] as a (1, ..., 1) tensor: the value, shape and dtype must be those of
    coef[t], for points and images, float32 and float64; fresh tables give their own values; and a sampler
    run must leave the schedule's tables as they were."""
    for x in (torch.zeros(4, 2), torch.zeros(4, 1, 28, 28), torch.zeros(4, 2, dtype=torch.float64)):
        for t in (0, 1, 37, 100):
            v = extract(s.posterior_mean_coef1, t, x)
            assert v.shape == (1,) * x.ndim and v.dtype == x.dtype
            assert v.item() == s.posterior_mean_coef1[t].to(x.dtype).item()
    for k in range(20):  # fresh tensors, each freed before the next: ids get reused
        coef = torch.arange(5, dtype=torch.float64) * (k + 1)
        assert extract(coef, 3, torch.zeros(2, 2)).item() == 3.0 * (k + 1)
        del coef
    before = {k: v.clone() for k, v in vars(s).items() if torch.is_tensor(v)}
    D.p_sample(s, lambda x, t, y=None: torch.ones_like(x), torch.randn(8, 2), 50)
    from toy_models.samplers import sample_ddpm

    class Eps:
        parameterization = "eps"

        def __call__(self, x, t, y=None):
            return 0.5 * x

    sample_ddpm(Eps(), s, torch.randn(8, 2, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(v, getattr(s, k)) for k, v in before.items())


def test_iterated_chain_agrees_with_q_sample(s):
    """x_t from t one-step Markov moves has the closed-form mean and covariance of q(x_t | x_0)."""
    g = torch.Generator().manual_seed(0)
    n = 20000
    x0 = torch.tensor([[1.5, -2.0]], dtype=torch.float64).expand(n, 2)
    ts, xs = D.q_chain(s, x0, stride=25, generator=g)
    assert ts == [0, 25, 50, 75, 100]
    for k, t in enumerate(ts[1:], start=1):
        mean, var, _ = D.q_mean_variance(s, x0[:1], t)
        emp_mean, emp_cov = xs[k].mean(0), torch.cov(xs[k].T)
        se = math.sqrt(var.item() / n)
        assert torch.allclose(emp_mean, mean[0], atol=5 * se)
        assert torch.allclose(
            emp_cov, var.item() * torch.eye(2, dtype=torch.float64), atol=6 * var.item() * math.sqrt(2 / n)
        )
    # and q_sample itself has those moments
    xt = D.q_sample(s, x0, 60, generator=g)
    mean, var, _ = D.q_mean_variance(s, x0[:1], 60)
    assert torch.allclose(xt.mean(0), mean[0], atol=5 * math.sqrt(var.item() / n))
    assert xt.var(0).mean().item() == pytest.approx(var.item(), rel=0.03)


def test_q_chain_stride_must_be_positive(s):
    with pytest.raises(ValueError, match="stride"):
        D.q_chain(s, torch.zeros(1, 2), stride=0)


def test_posterior_equals_brute_force_gaussian_conditioning(s):
    """q(x_{t-1} | x_t, x_0) from conditioning the joint Gaussian of (x_{t-1}, x_t) given x_0, per dimension."""
    x0 = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    xt = torch.tensor([[0.1, 0.4]], dtype=torch.float64)
    for t in (2, 10, 57, 100):
        abar_prev, alpha = s.alphas_cumprod[t - 1].item(), s.alphas[t].item()
        # joint: x_{t-1} = sqrt(abar_prev) x0 + sqrt(1-abar_prev) e1 ; x_t = sqrt(alpha) x_{t-1} + sqrt(1-alpha) e2
        mu = torch.tensor([math.sqrt(abar_prev), math.sqrt(abar_prev * alpha)], dtype=torch.float64)
        v1 = 1 - abar_prev
        cov = torch.tensor(
            [[v1, math.sqrt(alpha) * v1], [math.sqrt(alpha) * v1, alpha * v1 + 1 - alpha]], dtype=torch.float64
        )
        mean_bf = mu[0] * x0 + cov[0, 1] / cov[1, 1] * (xt - mu[1] * x0)
        var_bf = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        mean, var, logvar = D.q_posterior_mean_variance(s, x0, xt, t)
        assert torch.allclose(mean, mean_bf, rtol=1e-10, atol=1e-12)
        assert var.item() == pytest.approx(var_bf.item(), rel=1e-10)
        assert logvar.item() == pytest.approx(math.log(var_bf.item()), rel=1e-9)


def test_conversions_are_inverse(s):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.randint(1, 101, (8,), generator=g)
    xt = D.q_sample(s, x0, t, noise=eps)
    assert torch.allclose(D.predict_x0_from_eps(s, xt, t, eps), x0, atol=1e-9)
    assert torch.allclose(D.predict_eps_from_x0(s, xt, t, x0), eps, atol=1e-8)
    mean, _, _ = D.q_posterior_mean_variance(s, x0, xt, t)
    assert torch.allclose(D.predict_x0_from_mean(s, xt, t, mean), x0, atol=1e-8)
    score = D.eps_to_score(s, eps, t)
    assert torch.allclose(D.score_to_eps(s, score, t), eps, atol=1e-12)
    # score = -eps / sqrt(1 - abar): the score of q(x_t | x_0) = N(sqrt(abar) x0, (1-abar) I)
    _, var, _ = D.q_mean_variance(s, x0, t)
    assert torch.allclose(score, -(xt - extract(s.sqrt_alphas_cumprod, t, x0) * x0) / var, atol=1e-9)


class _Oracle(torch.nn.Module):
    """Knows the true x_0; predicts it in whichever parameterization it is asked for."""

    def __init__(self, s, x0, parameterization):
        super().__init__()
        self.s, self.x0, self.parameterization = s, x0, parameterization

    def forward(self, x_t, t, y=None):
        if self.parameterization == "x0":
            return self.x0
        if self.parameterization == "eps":
            return D.predict_eps_from_x0(self.s, x_t, t, self.x0)
        return D.q_posterior_mean_variance(self.s, self.x0, x_t, t)[0]


@pytest.mark.parametrize("param", ["eps", "x0", "mean"])
def test_p_mean_variance_recovers_the_posterior_for_an_oracle(s, param):
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(5, 2, generator=g, dtype=torch.float64)
    xt = D.q_sample(s, x0, 40, generator=g)
    out = D.p_mean_variance(s, _Oracle(s, x0, param), xt, 40)
    mean, var, logvar = D.q_posterior_mean_variance(s, x0, xt, 40)
    assert torch.allclose(out.mean, mean, atol=1e-9)
    assert torch.allclose(out.pred_x0, x0, atol=1e-8)
    assert torch.allclose(out.variance, var)
    out_beta = D.p_mean_variance(s, _Oracle(s, x0, param), xt, 40, variance="beta")
    assert out_beta.variance[0, 0].item() == pytest.approx(s.betas[40].item())


def test_clipping_keeps_eps_consistent_with_x0(s):
    x0 = torch.full((2, 3), 5.0, dtype=torch.float64)  # far outside [-1, 1]
    xt = D.q_sample(s, x0, 10, generator=torch.Generator().manual_seed(3))
    out = D.p_mean_variance(s, _Oracle(s, x0, "eps"), xt, 10, clip_x0=(-1, 1))
    assert out.pred_x0.max().item() == 1.0
    assert torch.allclose(D.predict_x0_from_eps(s, xt, 10, out.pred_eps), out.pred_x0, atol=1e-9)


def test_bad_model_output_and_names_fail_clearly(s):
    bad = lambda x, t, y=None: x[:, :1]
    with pytest.raises(ValueError, match="returned shape"):
        D.p_mean_variance(s, bad, torch.zeros(4, 2), 3)
    with pytest.raises(ValueError, match="variance must be one of"):
        D.p_mean_variance(s, _Oracle(s, torch.zeros(4, 2), "eps"), torch.zeros(4, 2), 3, variance="learned")
    m = _Oracle(s, torch.zeros(4, 2), "eps")
    m.parameterization = "v"
    with pytest.raises(ValueError, match="parameterization must be one of"):
        D.p_mean_variance(s, m, torch.zeros(4, 2), 3)


def test_p_sample_adds_no_noise_at_the_last_step(s):
    x0 = torch.randn(4, 2, dtype=torch.float64)
    m = _Oracle(s, x0, "eps")
    xt = D.q_sample(s, x0, 1)
    x_prev, out = D.p_sample(s, m, xt, 1)
    assert torch.equal(x_prev, out.mean)
    assert torch.allclose(x_prev, x0, atol=1e-9)
