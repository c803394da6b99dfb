"""Lesson 4 (the bound): every number against an independent computation or a closed form."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import elbo_lesson as L
from lessons.figures import MAX_PAYLOAD_BYTES, assert_no_nan, payload_bytes
from toy_models.elbo import elbo_terms, vb_term
from toy_models.gmm import AnalyticModel, default_gmm
from toy_models.schedules import make_schedule


@pytest.fixture(scope="module")
def gmm():
    return default_gmm()


def points(gmm, n, seed=0):
    return gmm.sample(n, generator=torch.Generator().manual_seed(seed))[0]


def test_terms_shown_sum_to_the_total_shown(gmm):
    s = make_schedule("linear", 30, beta_start=1e-3, beta_end=0.2)
    r = L.bound_terms(s, AnalyticModel(gmm, s), points(gmm, 200), variance="beta")
    assert r.terms.shape == (30,)
    assert sum(r.groups().values()) == pytest.approx(r.total, rel=1e-12)
    assert r.prior + r.terms.sum() == pytest.approx(r.total, rel=1e-12)
    assert r.per_example.mean() == pytest.approx(r.total, rel=1e-9)  # batch means and per-example sums agree
    assert r.bits_per_dim(r.total) == pytest.approx(r.total / (2 * math.log(2)))


def test_strided_terms_sum_to_their_weighted_total(gmm):
    s = make_schedule("linear", 50, beta_start=1e-3, beta_end=0.2)
    r = L.bound_terms(s, AnalyticModel(gmm, s), points(gmm, 100), stride=7, exact_head=5)
    assert r.weights.sum() == s.T and r.terms.shape == (12,) and r.T == s.T  # t = 1..5, then 6, 13, ..., 48
    assert r.times.tolist() == [1, 2, 3, 4, 5, 6, 13, 20, 27, 34, 41, 48] and r.weights[:6].tolist() == [1] * 5 + [7]
    assert r.dominant_steps() in r.times[1:]
    assert r.prior + (r.terms * r.weights).sum() == pytest.approx(r.total, rel=1e-12)


def test_batched_bound_agrees_with_toy_models_elbo_terms(gmm):
    """Two independent Monte Carlo runs of the same sum (different noise): means within 4 standard errors."""
    s = make_schedule("linear", 20, beta_start=1e-3, beta_end=0.3)
    m, x0 = AnalyticModel(gmm, s), points(gmm, 1500, 1)
    ours = L.bound_terms(s, m, x0, variance="beta_tilde", seed=3)
    ref = elbo_terms(s, m, x0, variance="beta_tilde", generator=torch.Generator().manual_seed(4))
    diff = ours.per_example - ref.total.numpy()
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / math.sqrt(len(diff))
    assert ours.prior == pytest.approx(ref.prior.mean().item(), rel=1e-9)  # L_T has no randomness


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_exact_model_bound_never_below_the_true_nll_on_average(gmm, variance):
    s = make_schedule("linear", 50, beta_start=1e-4, beta_end=0.4)
    x0 = points(gmm, 1000, 2)
    r = L.bound_terms(s, AnalyticModel(gmm, s), x0, variance=variance)
    gap = r.per_example - (-gmm.log_prob(x0).numpy())  # paired per example
    se = gap.std(ddof=1) / math.sqrt(len(gap))
    assert gap.mean() > 3 * se  # clearly above: at T = 50 the bound is loose


def test_bound_tightens_with_T_toward_the_true_nll(gmm):
    s = make_schedule("linear", 1000)
    r = L.bound_vs_T(gmm, s, [2, 10, 100], points(gmm, 300, 5), variance="beta")
    assert (np.diff(r.bound) < -3 * (r.stderr[:-1] + r.stderr[1:])).all(), r
    assert (r.gap > -3 * r.stderr).all()
    assert r.gap[-1] < r.gap[0] / 3


def test_same_process_keeps_the_alpha_bar_curve():
    s = make_schedule("linear", 1000)
    s2 = L.same_process(s, 250)
    assert s2.T == 250
    assert s2.alphas_cumprod[-1].item() == pytest.approx(s.alphas_cumprod[-1].item(), rel=1e-9)
    assert s2.alphas_cumprod[125].item() == pytest.approx(s.alphas_cumprod[500].item(), rel=1e-9)
    c = make_schedule("cosine", 1000)  # (its last beta is clipped at 0.999, so compare the middle)
    assert L.same_process(c, 250).alphas_cumprod[125].item() == pytest.approx(c.alphas_cumprod[500].item(), rel=1e-9)
    same = L.same_process(make_schedule("linear", 100), 100)
    assert torch.allclose(same.betas, make_schedule("linear", 100).betas, rtol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        L.same_process(s, 0)


@pytest.mark.parametrize("t_fixed", [None, 3, 40])
def test_rearranged_estimator_has_less_variance_and_the_same_mean(gmm, t_fixed):
    s = make_schedule("linear", 50, beta_start=1e-4, beta_end=0.4)
    c = L.compare_estimators(s, AnalyticModel(gmm, s), points(gmm, 1, 7)[0], n=4000, t_fixed=t_fixed)
    assert c.ratio == pytest.approx(np.std(c.naive, ddof=1) / np.std(c.rearranged, ddof=1))
    assert c.std_naive > c.std_rearranged  # Rao-Blackwell: the analytic KL is the conditional mean
    assert abs(c.mean_difference_z) < 4  # both estimate the same bound


def test_rearranged_estimates_average_to_the_exact_term(gmm):
    """At fixed t the rearranged estimate is L_T + T L_{t-1}: its mean matches vb_term's on fresh noise."""
    s = make_schedule("linear", 50, beta_start=1e-4, beta_end=0.4)
    m, x0 = AnalyticModel(gmm, s), points(gmm, 1, 8)[0]
    c = L.compare_estimators(s, m, x0, n=3000, t_fixed=10)
    xb = x0.double().expand(3000, 2).contiguous()
    ref = (L.prior_kl(s, xb) + s.T * vb_term(s, m, xb, 10, generator=torch.Generator().manual_seed(9))).numpy()
    se = math.sqrt(c.rearranged.var() / 3000 + ref.var() / 3000)
    assert abs(c.rearranged.mean() - ref.mean()) < 4 * se


def test_lambda_weights_turn_the_kl_into_the_eps_mse(gmm):
    """Ho et al. eq. 12: with sigma^2 = beta-tilde, L_{t-1} = lambda_t ||eps - eps_theta||^2 exactly."""
    s = make_schedule("linear", 200)
    m, x0 = AnalyticModel(gmm, s), points(gmm, 64, 3)
    t = 37
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kl = vb_term(s, m, x0, t, variance="beta_tilde", noise=noise)
    x_t = s.sqrt_alphas_cumprod[t] * x0 + s.sqrt_one_minus_alphas_cumprod[t] * noise  # eq. 4
    eps = m(x_t, torch.full((64,), float(t), dtype=torch.float64))
    tw, lam = L.simple_weights(s, "beta_tilde")
    assert tw[0] == 2 and len(tw) == s.T - 1
    b, a, acp = s.betas[t], s.alphas[t], s.alphas_cumprod[t]
    assert lam[t - 2] == pytest.approx((b**2 / (2 * s.posterior_variance[t] * a * (1 - acp))).item(), rel=1e-12)
    assert torch.allclose(kl, lam[t - 2] * ((noise - eps) ** 2).sum(1), rtol=1e-6)


def test_parameterizations_round_trip(gmm):
    s = make_schedule("linear", 100)
    errs = L.parameterization_roundtrip(s, AnalyticModel(gmm, s), torch.randn(16, 2, dtype=torch.float64), 50)
    assert len(errs) == 3 and max(errs.values()) < 1e-9
    with pytest.raises(ValueError, match="1..T"):
        L.parameterization_roundtrip(s, AnalyticModel(gmm, s), torch.randn(4, 2), 0)


def test_exact_mixture_model_is_differentiable_and_matches_the_analytic_model(gmm):
    s = make_schedule("linear", 100)
    x = torch.randn(32, 2, dtype=torch.float64, requires_grad=True)
    t = torch.full((32,), 40.0, dtype=torch.float64)
    out = L.AnalyticModel(gmm, s)(x, t)
    assert torch.allclose(out, AnalyticModel(gmm, s)(x.detach(), t), atol=1e-10)
    assert out.requires_grad


@pytest.mark.slow
def test_ode_nll_of_the_exact_model_matches_the_true_nll(gmm):
    s = make_schedule("linear", 1000)
    x0 = points(gmm, 8, 11)
    nll = L.ode_nll(L.AnalyticModel(gmm, s), s, x0, rtol=1e-5, atol=1e-5)
    assert np.allclose(nll, -gmm.log_prob(x0).numpy(), atol=0.02)


def test_bad_inputs_raise_clear_errors(gmm):
    s = make_schedule("linear", 10)
    m, x0 = AnalyticModel(gmm, s), points(gmm, 4)
    with pytest.raises(ValueError, match="variance"):
        L.bound_terms(s, m, x0, variance="learned")
    with pytest.raises(ValueError, match="stride"):
        L.bound_terms(s, m, x0, stride=0)
    with pytest.raises(ValueError, match="t_fixed"):
        L.compare_estimators(s, m, x0[0], n=10, t_fixed=11)
    with pytest.raises(ValueError, match="at least 2"):
        L.compare_estimators(s, m, x0[0], n=1)
    with pytest.raises(ValueError, match="steps"):
        L.train_and_summarise("tiny", 0)


def test_T_equal_one_has_no_kl_terms(gmm):
    s = make_schedule("linear", 1, beta_start=0.5, beta_end=0.5)
    r = L.bound_terms(s, AnalyticModel(gmm, s), points(gmm, 50))
    assert r.kl_sum == 0.0 and r.T == 1 and r.dominant_steps() == 1
    assert len(L.simple_weights(s)[0]) == 0


def test_figures_are_finite_and_small(gmm):
    s = make_schedule("linear", 100)
    m, x0 = AnalyticModel(gmm, s), points(gmm, 200)
    r = L.bound_terms(s, m, x0)
    figs = [L.fig_vae_diagram(), L.fig_terms({"exact": r}), L.fig_groups(r, 1.4, 1.41),
            L.fig_bound_vs_T({"beta": L.bound_vs_T(gmm, s, [2, 10], x0[:50])}, 100),
            L.fig_estimators(L.compare_estimators(s, m, x0[0], n=100)), L.fig_weights(*L.simple_weights(s)),
            L.fig_per_t({"exact": L.per_t_loss(s, m, x0, L.log_grid(s.T, 10))}),
            L.fig_samples({"a": x0.numpy()}, x0.numpy())]
    for f in figs:
        assert_no_nan(f)
        assert payload_bytes(f) < MAX_PAYLOAD_BYTES
        for ax in ("xaxis", "yaxis"):
            title = f.layout[ax].title.text
            assert title, f"{f.layout.title.text}: {ax} has no label"


def test_per_t_loss_of_the_exact_model_is_the_ideal_mse(gmm):
    """The exact (Bayes-optimal) model beats predicting zero noise, whose MSE is E||eps||^2 / D = 1."""
    s = make_schedule("linear", 100)
    m, x0 = AnalyticModel(gmm, s), points(gmm, 2000, 4)
    p = L.per_t_loss(s, m, x0, [1, 50, 100])
    assert (p.eps_mse < 1.05).all() and (p.eps_mse > 0).all()
    zero = type("Zero", (), {"parameterization": "eps", "__call__": lambda self, x, t, y=None: torch.zeros_like(x)})()
    pz = L.per_t_loss(s, zero, x0, [50])
    assert pz.eps_mse[0] == pytest.approx(1.0, abs=0.06)  # E||eps||^2 / D = 1
    assert p.eps_mse[1] < pz.eps_mse[0]


@pytest.mark.slow
def test_train_and_summarise_runs_a_tiny_recipe():
    summ = L.train_and_summarise("tiny", 20, seed=0)
    assert summ.samples.shape == (1000, 2) and np.isfinite(summ.samples).all()
    assert np.isfinite(summ.bound) and summ.swd > 0
    assert summ.per_t.eps_mse.shape == summ.per_t.ts.shape


def test_learned_moons_model_bound_when_shipped():
    from toy_models.checkpoints import CheckpointError, load_checkpoint
    from toy_models.data import sample_2d

    try:
        ck = load_checkpoint("moons")
    except CheckpointError as e:
        pytest.skip(f"weights/moons not shipped: {e}")
    x0 = torch.as_tensor(sample_2d("moons", 100, seed=0)[0]).float()
    r = L.bound_terms(ck.schedule, ck.model, x0, stride=50)
    assert np.isfinite(r.total) and sum(r.groups().values()) == pytest.approx(r.total, rel=1e-9)
    assert (r.terms[1:] >= 0).all()  # KLs between Gaussians


def test_net_summary_names_each_compared_models_network():
    """The objective comparison labels each two-moons model with its network, read from its recipe: a
    config written before the activation option existed is the SiLU + LayerNorm network."""
    import dataclasses

    from toy_models.recipes import get_recipe

    assert L.net_summary(dataclasses.asdict(get_recipe("moons"))) == "width 32, ReLU"
    assert L.net_summary(dataclasses.asdict(get_recipe("moons-vlb"))) == "width 64, SiLU + LayerNorm"
    assert L.net_summary({"network_config": {"width": 16, "gaussian_skip": True}}) == "width 16, SiLU + LayerNorm"


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_l0_floor_is_the_binned_gaussian_mass_around_the_exact_pixel(variance):
    """A denoiser that knows x_0 puts the decoder's mean on the pixel; what it pays is the mass of
    N(0, sigma_1^2) outside the pixel's bin [x - 1/255, x + 1/255] (only the inner side for the end values).
    Checked against that closed form, with sigma_1 from the betas and Phi from math.erf, in float64."""
    s = make_schedule("linear", 1000, beta_start=1e-4, beta_end=0.02)
    g = torch.Generator().manual_seed(3)
    x0 = (torch.randint(0, 256, (4, 1, 6, 6), generator=g).double() / 127.5 - 1.0)
    x0[:, :, 0] = -1.0  # a row of background, as in MNIST, and a few white pixels
    x0[:, :, 1, :2] = 1.0
    b1, b2 = float(s.betas[1]), float(s.betas[2])
    var = b1 if variance == "beta" else b2 * b1 / (1.0 - (1.0 - b1) * (1.0 - b2))  # beta-tilde_2 at t = 1
    z = (1.0 / 255.0) / math.sqrt(var)
    phi = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    inner, end = math.log(2.0 * phi - 1.0), math.log(phi)
    is_end = (x0.abs() > 0.999).double()
    want = -(is_end * end + (1.0 - is_end) * inner).flatten(1).sum(1).mean().item()
    assert L.l0_floor(s, x0, variance=variance) == pytest.approx(want, rel=1e-6)
    assert L.l0_floor(s, x0, variance=variance) > 0.0  # no network removes it while sigma_1 is fixed
