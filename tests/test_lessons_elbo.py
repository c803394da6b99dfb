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
    figs = [
        L.fig_vae_diagram(),
        L.fig_terms({"exact": r}),
        L.fig_groups(r, 1.4, 1.41),
        L.fig_bound_vs_T({"beta": L.bound_vs_T(gmm, s, [2, 10], x0[:50])}, 100),
        L.fig_estimators(L.compare_estimators(s, m, x0[0], n=100)),
        L.fig_weights(*L.simple_weights(s)),
        L.fig_per_t({"exact": L.per_t_loss(s, m, x0, L.log_grid(s.T, 10))}),
        L.fig_samples({"a": x0.numpy()}, x0.numpy()),
    ]
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
    x0 = torch.randint(0, 256, (4, 1, 6, 6), generator=g).double() / 127.5 - 1.0
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


# --- every equation of the lesson renders in KaTeX and fits a ~700 px column ---------------------------------------
def _equations() -> list[str]:
    return [latex for latex, _, _ in L.BOUND_LINES] + [L.EQ_SIMPLE] + list(L.EQ_PARAMS)


KNOWN_CONTROL_WORDS = {  # every control word the lesson's equations may use (all KaTeX built-ins)
    "log",
    "le",
    "mathbb",
    "left",
    "right",
    "frac",
    "mid",
    "sum",
    "begin",
    "end",
    "underbrace",
    "mathrm",
    "big",
    "Big",
    "qquad",
    "quad",
    "tilde",
    "mu",
    "sigma",
    "theta",
    "mathcal",
    "sqrt",
    "bar",
    "alpha",
    "beta",
    "lambda",
    "epsilon",
    "text",
    "Longleftrightarrow",
    "tfrac",
}


def test_equations_use_only_known_control_words():
    """No control word run into the next letters (the old `\\qquadL_0` rendered as a red KaTeX error)."""
    import re

    for eq in _equations():
        words = set(re.findall(r"\\([A-Za-z]+)", eq))
        assert words <= KNOWN_CONTROL_WORDS, (words - KNOWN_CONTROL_WORDS, eq)
        assert eq.count("{") == eq.count("}") and eq.count(r"\left") == eq.count(r"\right")
        assert eq.count(r"\begin") == eq.count(r"\end")


def test_equations_render_in_streamlit_s_katex_and_fit_the_column(tmp_path):
    """Parse each equation with the KaTeX that streamlit ships (as the browser does) and estimate its width.
    The estimate put the old one-line bound at 38 em (it was cut at the column's edge); the split lines are ~22."""
    from tests.helpers import MAX_EQUATION_EM, katex_report

    for eq, r in zip(_equations(), katex_report(_equations(), tmp_path)):
        assert r["ok"], (r.get("error"), eq)
        assert r["em"] <= MAX_EQUATION_EM, (r["em"], eq)


# --- the words of the page against the numbers ---------------------------------------------------------------
def test_the_bound_lines_write_the_expectation_and_define_c_t():
    assert r"L = \mathbb{E}_q\Big[" in L.BOUND_LINES[2][0]  # Ho et al. eq. 5: the sum sits inside E_q
    assert r"c_t &= \frac{1}{2}" in L.BOUND_LINES[4][0]


def test_c_t_as_displayed_is_the_variance_part_of_the_kl(gmm):
    """c_t = 1/2 (log(sigma^2 / beta-tilde) + beta-tilde / sigma^2 - 1) (the displayed formula, in float64) is what
    vb_weights uses, and KL(N(mu, beta-tilde I) || N(mu, sigma^2 I)) / D (equal means) equals it."""
    from toy_models.elbo import normal_kl, vb_weights

    s = make_schedule("linear", 100, beta_start=1e-3, beta_end=0.2)
    _, c = vb_weights(s, "beta")
    t = torch.arange(2, s.T + 1)
    sig2, bt = s.betas[t].double(), s.posterior_variance[t].double()
    shown = 0.5 * (torch.log(sig2 / bt) + bt / sig2 - 1)
    assert torch.allclose(c[2:].double(), shown, rtol=1e-10)
    kl = normal_kl(torch.zeros_like(bt), bt.log(), torch.zeros_like(bt), sig2.log())
    assert torch.allclose(kl, shown, rtol=1e-10)
    assert vb_weights(s, "beta_tilde")[1].abs().max() == 0  # zero when sigma_t^2 = beta-tilde_t


def test_lambda_is_ho_et_al_eq_12_in_float64():
    from toy_models.elbo import vb_weights

    s = make_schedule("linear", 50, beta_start=1e-3, beta_end=0.2)
    for variance, sig2 in (("beta", s.betas), ("beta_tilde", s.posterior_variance)):
        lam, _ = vb_weights(s, variance)
        b, a, acp = s.betas.double(), s.alphas.double(), s.alphas_cumprod.double()
        ref = b[2:] ** 2 / (2 * sig2.double()[2:] * a[2:] * (1 - acp[2:]))
        assert torch.allclose(lam[2:].double(), ref, rtol=1e-10)


def test_mnist_comparison_cites_flows_for_mnist_and_diffusion_for_cifar():
    assert "FFJORD 0.99" in L.MNIST_LIMITS and "Glow 1.05" in L.MNIST_LIMITS
    assert "CIFAR-10" in L.MNIST_LIMITS and "Nichol" not in L.MNIST_LIMITS


def test_estimator_labels_say_one_t_scaled_by_T(gmm):
    s = make_schedule("linear", 20, beta_start=1e-3, beta_end=0.3)
    c = L.compare_estimators(s, AnalyticModel(gmm, s), points(gmm, 1)[0], 50)
    names = [tr.name for tr in L.fig_estimators(c).data]
    assert all("one random t" in n and "× T" in n for n in names) and not any("whole chain" in n for n in names)
    fixed = L.fig_estimators(c, t_fixed=7)
    assert all("t = 7" in tr.name for tr in fixed.data) and "not the bound" in fixed.layout.title.text


def test_ode_text_reports_the_observation_from_the_numbers():
    below = L.ode_vs_bound_text(0.004, 1.1, 200, 1000, ("moons", 1.70, 0.97))
    assert "lies below the bound" in below and "shows the same" in below and "exactly" in below
    above = L.ode_vs_bound_text(1.3, 1.1, 200, 1000, ("moons", 1.70, 0.97))
    assert "lies above the bound" in above and "does not" in above
    assert "model's exact likelihood" not in below  # the ODE is another model, not the chain's likelihood


def test_hybrid_loss_of_the_trainer_is_l_simple_reweighted_by_1_plus_T_lambda():
    """toy_models.training's hybrid loss, on one batch at fixed t >= 2, equals w_t * (its L_simple) + 0.001 T c_t
    with w_t from hybrid_weights: the text's claim about the code, checked on the code."""
    from toy_models.elbo import vb_weights
    from toy_models.recipes import get_recipe
    from toy_models.training import Trainer

    r = get_recipe("moons-hybrid").replace(steps=1, batch_size=64)
    for variance in ("beta_tilde", "beta"):
        losses = {}
        for obj in ("simple", "hybrid"):
            tr = Trainer(r.replace(objective=obj, variance=variance), device="cpu", seed=0)
            x0, y = tr._batch()
            t = torch.randint(2, tr.schedule.T + 1, (64,), generator=torch.Generator().manual_seed(1))
            losses[obj] = tr._losses(x0, y, t, torch.full((64,), 1.0 / tr.schedule.T, dtype=torch.float64))
        _, w = L.hybrid_weights(tr.schedule, variance, r.vlb_weight)
        _, c = vb_weights(tr.schedule, variance)
        want = torch.as_tensor(w)[t - 2] * losses["simple"].double() + r.vlb_weight * tr.schedule.T * c[t].double()
        assert torch.allclose(losses["hybrid"].double(), want, rtol=1e-4, atol=1e-6)


def test_hybrid_text_on_the_shipped_recipe_says_a_small_reweighting():
    text = L.recipe_hybrid_text("moons-hybrid")
    assert "a small reweighting of L_simple" in text and "stop-gradient" in text
    s = make_schedule("cosine", 1000)
    assert "small reweighting" not in L.hybrid_text(s)  # lambda_T is large there: the verdict follows the numbers


# --- the "Try this" prompts, each at the setting it names (the page's exact model: 1,000 points, seed 0) ----------
@pytest.fixture(scope="module")
def page_reports(gmm):
    from lessons.settings import FrameState, build_schedule

    cache = {}
    x0 = points(gmm, 1000, 0)
    nll = float(-gmm.log_prob(x0).mean())

    def get(T=1000, schedule="linear", variance="beta_tilde"):
        key = (T, schedule, variance)
        if key not in cache:
            s = build_schedule(FrameState(T=T, schedule=schedule))
            cache[key] = L.bound_terms(s, AnalyticModel(gmm, s), x0, variance=variance, seed=0)
        return cache[key]

    return get, nll


@pytest.mark.slow
def test_try_this_T10_L_T_stays_tiny_terms_grow_and_the_gap_grows_several_times(page_reports):
    get, nll = page_reports
    r10, r1000 = get(T=10), get(T=1000)
    assert r10.prior < 1e-3 and r1000.prior < 1e-3  # "L_T stays tiny"
    assert r10.kl_sum / 9 > 10 * r1000.kl_sum / 999  # "each of the few KL terms is much larger"
    assert r10.l0 > r1000.l0 + 1  # "L_0 rises"
    assert r10.total - nll > 3 * (r1000.total - nll)  # "the gap ... grows several times over"


@pytest.mark.slow
def test_try_this_beta_shrinks_small_t_terms_changes_L0_and_tightens(page_reports):
    get, _ = page_reports
    tilde, beta = get(variance="beta_tilde"), get(variance="beta")
    assert (beta.terms[1:6] < tilde.terms[1:6]).all()  # t = 2..6
    assert abs(beta.l0 - tilde.l0) > 0.05
    assert beta.total < tilde.total


@pytest.mark.slow
def test_try_this_cosine_moves_half_of_the_kl_sum_to_larger_t(page_reports):
    get, _ = page_reports
    lin, cos = get(), get(schedule="cosine")
    assert cos.dominant_steps() > lin.dominant_steps()
    assert cos.dominant_steps() < 0.1 * cos.T  # still the last few denoising steps


@pytest.mark.slow
def test_try_this_fixed_t_naive_spread_grows_like_sqrt_T_rearranged_does_not(gmm):
    from lessons.settings import FrameState, build_schedule

    x0 = points(gmm, 1000, 0)[0]  # the page's data point 0
    out = {}
    for T in (100, 1000):
        s = build_schedule(FrameState(T=T))
        out[T] = L.compare_estimators(s, AnalyticModel(gmm, s), x0, 2000, "beta_tilde", 0, T // 2)
    grow = out[1000].std_naive / out[100].std_naive
    assert 0.6 * math.sqrt(10) < grow < 1.5 * math.sqrt(10)
    assert 0.8 < out[1000].std_rearranged / out[100].std_rearranged < 1.25
