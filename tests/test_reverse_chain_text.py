"""Lesson 3's sentences checked against computations: the small-step Gaussian (closed form vs Bayes' rule on a
grid, float64), beta-tilde against beta, DDIM's two limits, and every 'Try this' prompt at the setting it names
(the lesson functions the page calls, with the same arguments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import reverse_chain as L
from lessons.settings import FrameState, build_schedule
from toy_models.diffusion import q_posterior_mean_variance
from toy_models.gmm import default_gmm, gaussian_fit, reverse_conditional
from toy_models.guidance import null_labels
from toy_models.samplers import ddim_step

GMM = default_gmm()
DEFAULT = build_schedule(FrameState())


# --- 3. why a small step is nearly Gaussian ----------------------------------------------------------------
def _grid_moments(s, x_t, t, n=401):
    """Mean and covariance of q(x_{t-1} | x_t) by Bayes' rule on a grid (prior q_{t-1} times the forward step)."""
    a, b = float(s.alphas[t]), float(s.betas[t])
    c = np.asarray(x_t) / math.sqrt(a)
    half = 8 * math.sqrt(b / a)
    g = np.linspace(-half, half, n)
    yy, xx = np.meshgrid(g + c[1], g + c[0], indexing="ij")
    pts = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1))
    prior = GMM.noised(float(s.alphas_cumprod[t - 1]))
    logp = prior.log_prob(pts) - ((torch.tensor(x_t) - math.sqrt(a) * pts) ** 2).sum(1) / (2 * b)
    w = torch.softmax(logp, 0)
    m = (w[:, None] * pts).sum(0)
    d = pts - m
    return m.numpy(), (w[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0).numpy()


@pytest.mark.parametrize("x_t", [(0.0, 0.0), (1.2, -0.7)])
def test_small_step_gaussian_mean_exact_and_variance_error_shrinks_like_beta_squared(x_t):
    errs = []
    for T in (1000, 200, 50):
        s = build_schedule(FrameState(T=T))
        t = T // 2
        b = float(s.betas[t])
        m, v = L.small_step_gaussian(GMM, s, x_t, t)
        gm, gc = _grid_moments(s, x_t, t)
        em, ec = gaussian_fit(reverse_conditional(GMM, s, torch.tensor(x_t), t))
        assert np.allclose(gm, em.numpy(), atol=1e-9) and np.allclose(gc, ec.numpy(), atol=1e-10)  # two routes agree
        assert np.allclose(m, em.numpy(), atol=1e-10)  # the mean is exact (Tweedie), at any beta_t
        assert v == b
        err = np.abs(ec.numpy() - b * np.eye(2)).max()
        assert err < 3 * b**2, (T, err, b)  # variance right up to O(beta_t^2)
        errs.append((b, err))
    assert errs[0][1] < errs[1][1] < errs[2][1]  # shrinks as beta_t does


def test_exact_covariance_is_beta_over_alpha_times_identity_plus_beta_hessian():
    """The sentence 'the exact covariance is (beta/alpha)(I + beta grad^2 log q_t)': Hessian by central differences."""
    s = build_schedule(FrameState(T=20))
    t, x = 10, torch.tensor([0.4, -0.9], dtype=torch.float64)
    a, b, ab = float(s.alphas[t]), float(s.betas[t]), float(s.alphas_cumprod[t])
    h = 1e-5
    H = np.stack(
        [
            (
                (GMM.score((x + h * e)[None], alpha_bar=ab) - GMM.score((x - h * e)[None], alpha_bar=ab))[0] / (2 * h)
            ).numpy()
            for e in torch.eye(2, dtype=torch.float64)
        ],
        1,
    )
    _, cov = gaussian_fit(reverse_conditional(GMM, s, x, t))
    assert np.allclose(cov.numpy(), b / a * (np.eye(2) + b * H), atol=1e-7)


def test_kl_to_small_step_gaussian_shrinks_as_T_grows_and_the_figure_shows_it():
    c = L.kl_vs_steps(GMM, DEFAULT, 0.5, [0.0, 0.0])
    assert np.all(np.diff(c.kl_small_mean) < 0), c.kl_small_mean
    assert c.kl_small_mean[0] > 0.1 and c.kl_small_mean[-1] < 1e-6
    assert np.all(c.kl_small_mean >= c.kl_mean - 1e-12)  # the best Gaussian is the best
    fig = L.fig_kl_curve(c, 2)
    assert np.allclose(fig.data[2].y, np.maximum(c.kl_small_mean, 1e-12))
    r = L.reverse_step(GMM, DEFAULT, 10, 0.5, [0.3, 0.2])
    f = L.fig_reverse_step(r)
    circle = [tr for tr in f.data if tr.name == "small-step Gaussian: 2 sd"]
    assert len(circle) == 2
    radius = np.hypot(np.asarray(circle[0].x) - r.small_mean[0], np.asarray(circle[0].y) - r.small_mean[1])
    assert np.allclose(radius, 2 * math.sqrt(r.beta_t), rtol=1e-3)
    assert f"KL = {r.kl_small:.3g} nats" in f.layout.title.text


# --- 1. beta-tilde against beta ----------------------------------------------------------------------------
def test_posterior_text_quotes_the_ratio_of_the_schedule_in_force():
    r = L.variance_ratio(DEFAULT)
    ab = DEFAULT.alphas_cumprod.double()
    assert r[1] == 0.0 and math.isclose(r[2], float((1 - ab[1]) / (1 - ab[2])), rel_tol=1e-12)
    assert np.allclose(r[1:], (DEFAULT.posterior_variance[1:] / DEFAULT.betas[1:]).double().numpy(), rtol=1e-5)
    t99 = int(np.argmax(r >= 0.99))
    assert r[t99 - 1] < 0.99 <= r[t99]
    text = L.posterior_text(DEFAULT)
    assert f"β̃_2 = {r[2]:.2f} β_2" in text and f"from t = {t99} on" in text
    assert "slightly below" not in text
    assert 0.4 < r[2] < 0.5  # the brief's figure: about 0.45 on the default schedule
    short = build_schedule(FrameState(T=2))
    assert "never comes within 1%" in L.posterior_text(short)


@pytest.mark.parametrize("T", [1000, 10, 2])
def test_try_posterior_is_true_at_its_settings(T):
    s = build_schedule(FrameState(T=T))
    text = L.try_posterior(s)
    p1 = L.posterior_view(s, [1.5, 1.0], [-1.0, -0.5], 1)
    assert np.allclose(p1.mean, [1.5, 1.0], atol=1e-12) and p1.var == 0.0  # t = 1: the mean is x_0
    pT = L.posterior_view(s, [1.5, 1.0], [-1.0, -0.5], T)
    if "barely matters" in text:
        assert pT.coef1 < 0.01 and T == 1000
    else:
        assert pT.coef1 >= 0.01 and T in (10, 2)
    assert f"{pT.coef1:.2g}" in text


# --- 5. DDIM's two limits -----------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [2, 500, 1000])
def test_ddim_eta_one_is_the_ddpm_beta_tilde_step(t):
    s = DEFAULT
    g = torch.Generator().manual_seed(t)
    x0, xt, z = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(3))
    ab = float(s.alphas_cumprod[t])
    eps = (xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    x_next, sigma = ddim_step(s, xt, eps, x0, t, t - 1, 1.0, z)
    mean, var, _ = q_posterior_mean_variance(s, x0, xt, t)
    assert math.isclose(sigma**2, float(var.flatten()[0]), rel_tol=1e-9)
    assert torch.allclose(x_next, mean + sigma * z, atol=1e-10)


def test_ddim_eta_zero_is_an_euler_step_in_xbar_and_sigma():
    s, t, tn = DEFAULT, 700, 650
    g = torch.Generator().manual_seed(0)
    xt, eps = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(2))
    a, an = float(s.alphas_cumprod[t]), float(s.alphas_cumprod[tn])
    x0 = (xt - math.sqrt(1 - a) * eps) / math.sqrt(a)
    x_next, sigma = ddim_step(s, xt, eps, x0, t, tn, 0.0)
    kappa = lambda ab: math.sqrt((1 - ab) / ab)  # noqa: E731
    assert sigma == 0.0
    assert torch.allclose(x_next / math.sqrt(an), xt / math.sqrt(a) + (kappa(an) - kappa(a)) * eps, atol=1e-10)


# --- 6. the prompts, at the settings they name --------------------------------------------------------------
def test_try_small_one_peak_per_cluster_at_2_steps_and_one_blob_at_1000():
    r2 = L.reverse_step(GMM, DEFAULT, 2, 0.5, [0.0, 0.0])  # the page's defaults: cut = 2, level 0.5, origin
    r1000 = L.reverse_step(GMM, DEFAULT, 1000, 0.5, [0.0, 0.0])
    assert r2.n_peaks == GMM.num_components == 5
    assert r1000.n_peaks == 1
    assert r1000.kl < 1e-6 * r2.kl  # "falls by orders of magnitude"
    assert L.count_peaks(np.zeros((5, 5)) - np.arange(5)[:, None] ** 2.0) == 0  # a ridge at the edge is no peak


def test_try_chain_spread_grows_and_two_big_steps_miss_the_clusters():
    s = DEFAULT
    run = L.ddpm_chain(L.MixtureEpsModel(GMM, s), s, 500, 0)
    data = GMM.sample(2000, generator=torch.Generator().manual_seed(7))[0].numpy()
    half, late = L.spread(run.pred_x0[run.index_of(500)]), L.spread(run.pred_x0[run.index_of(1)])
    assert half < 0.5 * L.spread(data) and abs(late - L.spread(data)) < 0.1 * L.spread(data)
    ref = L.mean_log_density(GMM, data)
    assert abs(L.mean_log_density(GMM, run.xs[-1]) - ref) < 0.2  # T = 1000: the samples fit the data
    s2 = build_schedule(FrameState(T=2))
    run2 = L.ddpm_chain(L.MixtureEpsModel(GMM, s2), s2, 500, 0)
    assert L.mean_log_density(GMM, run2.xs[-1]) < ref - 1.0  # T = 2: far below the data's


def test_try_mnist_kept_steps_include_900_and_300_at_the_default_20_ddim_steps():
    from toy_models.networks import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(channels=[8, 8], attention=False, num_classes=10, time_embed_dim=16)).eval()
    ch = L.digit_chain(net, DEFAULT, 1, seed=0, sampler="ddim", steps=20)  # one digit, the null label
    assert {900, 300} <= set(int(t) for t in ch.ts)
    assert null_labels(net, 2).tolist() == [10, 10] and null_labels(torch.nn.Identity(), 2) is None
    assert "t = 900, then t = 300" in L.TRY_MNIST
