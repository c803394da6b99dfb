"""Unit tests of the frame (URL state) and of the forward / schedule-lab lessons: values against
closed forms and independent computations, figures without NaN and under the payload limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import forward as L
from lessons import schedule_lab as S
from lessons import settings
from lessons.figures import MAX_PAYLOAD_BYTES, assert_no_nan, finite, payload_bytes
from toy_models.schedules import make_schedule


# --- the frame: URL <-> state ------------------------------------------------------------------------
def test_empty_url_gives_defaults_without_notices():
    state, notes = settings.parse_params({})
    assert state == settings.DEFAULT and notes == []


def test_round_trip_through_the_url():
    state = settings.FrameState(data="rings", schedule="sigmoid", T=37, beta_1=0.001, beta_T=0.3, seed=12)
    back, notes = settings.parse_params(settings.to_params(state))
    assert back == state and notes == []
    cos = settings.FrameState(schedule="cosine", s=0.02)
    p = settings.to_params(cos)
    assert "beta_1" not in p and "beta_T" not in p and p["s"] == "0.02"


@pytest.mark.parametrize(
    "params,field,expected",
    [
        ({"data": "mnist3"}, "data", "moons"),
        ({"schedule": "quadratic"}, "schedule", "linear"),
        ({"T": "abc"}, "T", 1000),
        ({"T": "2.5"}, "T", 1000),
        ({"T": "0"}, "T", settings.T_MIN),
        ({"T": "10000000"}, "T", settings.T_MAX),
        ({"beta_T": "2"}, "beta_T", settings.BETA_MAX),
        ({"beta_1": "-1"}, "beta_1", settings.BETA_MIN),
        ({"beta_1": "nan"}, "beta_1", 1e-4),
        ({"beta_T": "inf"}, "beta_T", 0.02),
        ({"s": "5"}, "s", settings.S_MAX),
        ({"seed": "-3"}, "seed", 0),
        ({"seed": "1e30"}, "seed", settings.SEED_MAX),
    ],
)
def test_bad_url_values_are_repaired_with_a_notice(params, field, expected):
    state, notes = settings.parse_params(params)
    assert getattr(state, field) == expected
    assert len(notes) == 1 and field in notes[0]
    settings.build_schedule(state)  # always a valid schedule


def test_build_schedule_matches_make_schedule():
    st_ = settings.FrameState(schedule="sigmoid", T=300, beta_1=0.002, beta_T=0.04)  # stated for T = 1000
    ref = make_schedule("sigmoid", 300, beta_start=0.002 * 1000 / 300, beta_end=0.04 * 1000 / 300)
    assert torch.equal(settings.build_schedule(st_).alphas_cumprod, ref.alphas_cumprod)
    cos = settings.build_schedule(st_, "cosine")
    assert torch.equal(cos.betas, make_schedule("cosine", 300, s=st_.s).betas)
    with pytest.raises(ValueError, match="valid"):
        settings.build_schedule(st_, "quadratic")


def test_every_page_file_is_in_the_catalogue():
    """Each views/*.py is a lesson of LESSONS (else st.navigation would not show it); pages are unique."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert [les.title for les in settings.LESSONS][:2] == ["Forward noising", "Schedule lab"]
    listed = [les.page for les in settings.LESSONS if les.page]
    assert len(listed) == len(set(listed))
    on_disk = {f"views/{p.name}" for p in (root / "views").glob("*.py") if not p.name.startswith(("_", "."))}
    assert on_disk <= set(listed), on_disk - set(listed)


# --- forward computations ------------------------------------------------------------------------------
def test_noised_moments_match_eq4():
    s = make_schedule("linear", 100)
    x0 = torch.full((40_000, 2), 1.5)
    xt = L.noised(s, x0, 60, seed=3)
    a = float(s.alphas_cumprod[60])
    se_mean = math.sqrt((1 - a) / 40_000)
    assert np.all(np.abs(xt.mean(0) - math.sqrt(a) * 1.5) < 4 * se_mean)
    assert np.all(np.abs(xt.var(0) / (1 - a) - 1) < 4 * math.sqrt(2 / 40_000))
    assert np.array_equal(L.noised(s, x0[:3], 0), x0[:3].double().numpy())
    with pytest.raises(ValueError, match="0 to T"):
        L.noised(s, x0, 101)


def test_chain_and_closed_form_agree_with_theory():
    """Both routes to x_t: means within 4 standard errors, variances within 4 (2/n)^0.5 relative."""
    s = make_schedule("cosine", 200)
    n, t = 8000, 70
    point = torch.tensor([1.2, -0.7], dtype=torch.float64)
    r = L.chain_vs_closed(s, point, t, n=n, seed=5)
    a = float(s.alphas_cumprod[t])
    assert np.allclose(r.mean_theory, math.sqrt(a) * point.numpy()) and math.isclose(r.var_theory, 1 - a)
    for name, m in r.moments().items():
        assert np.all(np.abs(m["mean"] - r.mean_theory) < 4 * math.sqrt(r.var_theory / n)), name
        assert np.all(np.abs(m["var"] / r.var_theory - 1) < 4 * math.sqrt(2 / n)), name
    # the precomputed chain gives the same statistics at every t
    chain = L.chain_copies(s, point, n=2000, seed=1)
    assert chain.shape == (201, 2000, 2) and np.allclose(chain[0], point.numpy())
    r2 = L.chain_vs_closed(s, point, 150, n=2000, seed=1, chain=chain)
    assert np.all(np.abs(r2.chain.mean(0) - r2.mean_theory) < 4 * math.sqrt(r2.var_theory / 2000))


def test_kl_quadrature_matches_closed_form_for_one_gaussian():
    """KL(N(m, C) || N(0, I)) = (tr C + m.m - D - log det C) / 2, by grid and by Gauss-Hermite."""
    m = torch.tensor([0.8, -0.3], dtype=torch.float64)
    C = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
    exact = 0.5 * float(torch.trace(C) + m @ m - 2 - torch.logdet(C))
    mvn = torch.distributions.MultivariateNormal(m, C)
    assert math.isclose(L.kl_to_standard_normal_grid(mvn.log_prob, 7.0, 301), exact, rel_tol=1e-4)

    from toy_models.gmm import GaussianMixture

    OneGaussian = GaussianMixture(torch.ones(1, dtype=torch.float64), m[None], C[None])

    s = make_schedule("linear", 50, beta_start=0.01, beta_end=0.2)
    for t in (0, 10, 50):
        a = float(s.alphas_cumprod[t])
        Ct = a * C + (1 - a) * torch.eye(2, dtype=torch.float64)
        mt = math.sqrt(a) * m
        exact_t = 0.5 * float(torch.trace(Ct) + mt @ mt - 2 - torch.logdet(Ct))
        assert math.isclose(L.gmm_kl_curve(OneGaussian, s, [t])[0], exact_t, rel_tol=1e-8, abs_tol=1e-12)


def test_gmm_kl_curve_against_grid_quadrature_and_monotone():
    gmm_mod = pytest.importorskip("toy_models.gmm")
    g = gmm_mod.default_gmm()
    s = make_schedule("linear", 1000)
    times = L.animation_times(1000, 20)
    kl = L.gmm_kl_curve(g, s, times)
    assert np.all(np.diff(kl) < 0) and kl[-1] < 1e-6 and kl[0] > 0.5
    for t in (30, 200):  # independent computation: a plain Riemann sum on a fine grid
        q = g.noised(float(s.alphas_cumprod[t]))
        grid = L.kl_to_standard_normal_grid(lambda x: q.log_prob(x), 7.0, 301)
        assert math.isclose(L.gmm_kl_curve(g, s, [t])[0], grid, rel_tol=1e-3)


def _one_gaussian():
    """Gaussian data as a one-component mixture: every curve has a closed form."""
    from toy_models.gmm import GaussianMixture

    return GaussianMixture(
        torch.ones(1, dtype=torch.float64),
        torch.tensor([[0.8, -0.3]], dtype=torch.float64),
        torch.tensor([[[0.5, 0.2], [0.2, 0.3]]], dtype=torch.float64),
    )


def test_prior_term_exceeds_the_marginal_kl_by_the_mutual_information_gaussian_data():
    """Gaussian data x_0 ~ N(m, C):
    L(t) = E KL(q(x_t | x_0) || N(0, I)) = (abar E|x_0|^2 - D abar - D log(1 - abar)) / 2
    and I(x_0; x_t) = (log det(abar C + (1 - abar) I) - D log(1 - abar)) / 2, both closed forms; the page's two
    curves must differ by exactly that mutual information."""
    g = _one_gaussian()
    m, C = g.means[0], g.covs[0]
    s = make_schedule("linear", 50, beta_start=0.002, beta_end=0.4)  # Ho et al.'s range at T = 50
    times = [1, 5, 20, 50]
    prior = L.prior_term_curve(g, s, times)
    kl = L.gmm_kl_curve(g, s, times)
    for t, p_t, k_t in zip(times, prior, kl):
        a = float(s.alphas_cumprod[t])
        second = float(torch.trace(C) + m @ m)
        assert p_t == pytest.approx(0.5 * (a * second - 2 * a - 2 * math.log1p(-a)), rel=1e-10)
        mi = 0.5 * (float(torch.logdet(a * C + (1 - a) * torch.eye(2, dtype=torch.float64))) - 2 * math.log1p(-a))
        assert p_t >= k_t and p_t - k_t == pytest.approx(mi, rel=1e-6, abs=1e-13)
    # at t = T it is toy_models.elbo.prior_kl (the bound's L_T) averaged over draws of x_0
    from toy_models.elbo import prior_kl

    x0 = torch.distributions.MultivariateNormal(m, C).sample((200_000,))
    per_x0 = prior_kl(s, x0)
    assert prior[-1] == pytest.approx(float(per_x0.mean()), abs=4 * float(per_x0.std()) / math.sqrt(len(x0)))
    assert L.prior_term_curve(g, s, [0])[0] == math.inf  # q(x_0 | x_0) is a point mass


def test_prior_term_gap_on_the_mixture_matches_a_monte_carlo_mutual_information():
    """On the page's mixture: L(t) >= KL(q(x_t) || N(0, I)) at every t, and the gap agrees with an independent
    Monte Carlo estimate of I(x_0; x_t) = E[log q(x_t | x_0) - log q(x_t)] (exact log densities)."""
    gmm_mod = pytest.importorskip("toy_models.gmm")
    g = gmm_mod.default_gmm()
    s = make_schedule("linear", 1000)
    times = L.animation_times(1000, 40)[1:]
    prior, kl = L.prior_term_curve(g, s, times), L.gmm_kl_curve(g, s, times)
    assert np.all(prior >= kl)
    gen = torch.Generator().manual_seed(0)
    x0, _ = g.sample(100_000, generator=gen)
    for t in (50, 250, 600):
        a = float(s.alphas_cumprod[t])
        xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        log_cond = -0.5 * ((xt - math.sqrt(a) * x0) ** 2).sum(1) / (1 - a) - math.log(2 * math.pi * (1 - a))
        d = log_cond - g.noised(a).log_prob(xt)
        gap = L.prior_term_curve(g, s, [t])[0] - L.gmm_kl_curve(g, s, [t])[0]
        assert gap == pytest.approx(float(d.mean()), abs=4 * float(d.std()) / math.sqrt(len(d))), t
    # at the default T the two numbers the page names differ by orders of magnitude: L_T is mostly I(x_0; x_T)
    assert prior[-1] > 100 * kl[-1]


def test_animation_times():
    assert L.animation_times(1, 24) == [0, 1]
    ts = L.animation_times(1000, 24)
    assert ts[0] == 0 and ts[-1] == 1000 and len(ts) <= 24 and ts == sorted(set(ts))


def test_animation_payload_under_limit_and_finite():
    s = make_schedule("linear", 2000, beta_start=1e-4, beta_end=0.999)
    x0 = torch.randn(600, 2, generator=torch.Generator().manual_seed(0))
    times = L.animation_times(s.T, 24)
    frames = L.forward_frames(s, x0, times)
    assert frames.shape == (len(times), 600, 2)
    # each frame is eq. 4 with one shared eps: frame 0 is x_0 exactly
    assert np.allclose(frames[0], x0.numpy(), atol=1e-6)
    fig = L.fig_animation(x0.numpy(), frames, times, s.alphas_cumprod[times].numpy())
    assert len(fig.frames) == len(times)
    assert payload_bytes(fig) < MAX_PAYLOAD_BYTES
    assert_no_nan(fig)


def test_figures_have_no_nan_at_extremes():
    s = make_schedule("linear", 5, beta_start=0.999, beta_end=0.999)  # abar_T ~ 1e-15
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    xt = L.noised(s, x0, 5)
    assert_no_nan(L.fig_xt(x0.numpy(), xt, 5, float(s.alphas_cumprod[5])))
    ts, xs = L.chain_paths(s, x0[:3])
    assert list(ts) == [0, 1, 2, 3, 4, 5]
    assert_no_nan(L.fig_trajectories(ts, xs, s.alphas_cumprod[ts].numpy()))
    img = torch.rand(1, 28, 28) * 2 - 1
    xt_img = L.noised(s, img[None], 3)[0, 0]
    for fig in (
        L.fig_digit(xt_img, 3),
        L.fig_pixel_hist(img[0].numpy(), xt_img, 3),
        L.fig_digit_row(np.stack([img[0].numpy()] * 3), [0, 1, 2]),
    ):
        assert_no_nan(fig)
        assert payload_bytes(fig) < MAX_PAYLOAD_BYTES


def test_finite_and_assert_no_nan():
    a = finite([np.nan, -np.inf, np.inf, 2.0], -5, 5)
    assert a.tolist() == [-5, -5, 5, 2]
    import plotly.graph_objects as go

    with pytest.raises(ValueError, match="non-finite"):
        assert_no_nan(go.Figure(go.Scatter(x=[0, 1], y=[0, float("nan")])))


# --- schedule lab -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,kw",
    [
        ("linear", dict(beta_start=1e-4, beta_end=0.999)),
        ("cosine", dict(s=0.008)),
        ("sigmoid", dict(beta_start=0.02, beta_end=0.02)),
    ],
)
def test_schedule_curves_match_tables_and_are_finite(name, kw):
    s = make_schedule(name, 2000, **kw)
    c = S.schedule_curves(s)
    for key in c:
        assert np.isfinite(c[key]).all(), key
    assert np.allclose(c["sqrt_abar"] ** 2, s.alphas_cumprod.numpy())
    assert np.allclose(c["sqrt_abar"] ** 2 + c["sqrt_one_minus_abar"] ** 2, 1.0)
    t = 700
    left = S.signal_left(s, t)
    a = float(s.alphas_cumprod[t])
    assert math.isclose(left["signal"], math.sqrt(a)) and math.isclose(left["noise"], math.sqrt(1 - a))
    if 1e-12 < a < 1 - 1e-12:
        assert math.isclose(left["log_snr"], math.log(a / (1 - a)), rel_tol=1e-9)
    fig = S.fig_schedules({n: make_schedule(n, 2000) for n in ("linear", "cosine", "sigmoid")} | {name: s}, t, name)
    assert_no_nan(fig)
    assert payload_bytes(fig) < MAX_PAYLOAD_BYTES
    from lessons.figures import validated

    validated(fig)  # built from dicts for speed: must still be valid plotly
    assert [a.text for a in fig.layout.annotations][:5] == [label for _, label in S.QUANTITIES]
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis5.domain[1]  # panel 1 on top, panel 5 at the bottom
    assert fig.layout.xaxis5.title.text == "t" and fig.layout.xaxis2.matches == "x"
    assert all(sh.x0 == t for sh in fig.layout.shapes) and len(fig.layout.shapes) == 5
    signal = [tr for tr in fig.data if tr.name == name and tr.yaxis == "y3"][0]  # the "signal left" panel
    assert np.allclose(np.interp(t, signal.x, signal.y), left["signal"], atol=2e-3)
    two = S.fig_two_digits(np.zeros((28, 28)), np.ones((28, 28)), "linear", "cosine", t, 0.5, 0.2)
    validated(two)
    assert two.data[1].xaxis == "x2" and two.layout.yaxis2.scaleanchor == "x2"


def test_same_digit_two_schedules():
    img = torch.rand(1, 28, 28, dtype=torch.float64) * 2 - 1
    lin, cos = make_schedule("linear", 100), make_schedule("cosine", 100)
    a, b = S.same_digit_two_schedules(img, lin, cos, 0)
    assert np.allclose(a, img[0].numpy()) and np.allclose(b, img[0].numpy())
    a, b = S.same_digit_two_schedules(img, lin, lin, 40, seed=2)
    assert np.array_equal(a, b)
    a, b = S.same_digit_two_schedules(img, lin, cos, 40, seed=2)
    # same noise: x_t - sqrt(abar) x_0 is the same eps scaled by sqrt(1 - abar)
    ea = (a - float(lin.sqrt_alphas_cumprod[40]) * img[0].numpy()) / float(lin.sqrt_one_minus_alphas_cumprod[40])
    eb = (b - float(cos.sqrt_alphas_cumprod[40]) * img[0].numpy()) / float(cos.sqrt_one_minus_alphas_cumprod[40])
    assert np.allclose(ea, eb, atol=1e-9)


def _default(T: int, name: str):
    """The sidebar's default schedule at T, built by hand: Ho et al.'s 1e-4..0.02 scaled by 1000/T, clipped."""
    if name == "cosine":
        return make_schedule("cosine", T, s=0.008)
    return make_schedule(name, T, beta_start=min(1e-4 * 1000 / T, 0.999), beta_end=min(0.02 * 1000 / T, 0.999))


@pytest.mark.parametrize("T", [1000, 100])
def test_schedule_lab_narrative_claims_hold(T):
    """Every claim of the lab's narrative and of its panel notes, checked on the default schedules at T."""
    lin, cos, sig = (_default(T, n) for n in ("linear", "cosine", "sigmoid"))
    text = S.narrative(T)
    for s in (lin, cos, sig):
        a = s.alphas_cumprod.numpy()
        t_half = next(t for t in range(T + 1) if a[t] <= 0.5)  # an independent search
        share = sum(a[t] < 0.01 for t in range(1, T + 1)) / T
        assert S.schedule_facts(s) == {"t_half": t_half, "noise_share": pytest.approx(share)}
        assert f"1/2 at t = {t_half}" in text
    # "takes the signal away fast" / "nearly pure-noise steps at the end": the linear tail is 4x the cosine's,
    # and it is a tail (every step after the first one below 0.01 stays below)
    f_lin, f_cos = S.schedule_facts(lin), S.schedule_facts(cos)
    assert f_lin["noise_share"] > 4 * f_cos["noise_share"] and f_lin["t_half"] < 0.3 * T
    a = lin.alphas_cumprod.numpy()
    assert np.all(a[np.flatnonzero(a < 0.01)[0] :] < 0.01)
    assert f"{f_lin['noise_share']:.0%} of its steps" in text and f"{f_cos['noise_share']:.0%} of its steps" in text
    # cosine: abar falls nearly linearly in the middle and changes little near t = 0 and t = T
    u = np.arange(T + 1) / T
    ac = cos.alphas_cumprod.numpy()
    mid = (u >= 0.25) & (u <= 0.75)
    fit = np.polyval(np.polyfit(u[mid], ac[mid], 1), u[mid])
    assert np.abs(fit - ac[mid]).max() < 0.05
    slope = np.abs(np.diff(ac)) * T
    assert slope[: T // 50].max() < 0.2 * slope[T // 2] and slope[-(T // 50) :].max() < 0.2 * slope[T // 2]
    # the log-SNR panel: cosine's is nearly straight in the middle, steeper near both ends
    ls = cos.log_snr.numpy()
    fit = np.polyval(np.polyfit(u[mid], ls[mid], 1), u[mid])
    assert np.abs(fit - ls[mid]).max() < 0.1 * (ls[mid].max() - ls[mid].min())
    d = np.abs(np.diff(ls[1:]))
    assert min(d[: T // 20].mean(), d[-(T // 20) :].mean()) > 2 * d[T // 4 : 3 * T // 4].mean()
    # the beta panel: linear is a straight line, sigmoid flat at both ends, cosine ends on its 0.999 clip
    b = lin.betas.numpy()[1:]
    assert np.allclose(np.diff(b), (b[-1] - b[0]) / (T - 1))
    bs = sig.betas.numpy()[1:]
    span = bs[-1] - bs[0]
    assert bs[T // 10] - bs[0] < 0.01 * span and bs[-1] - bs[-T // 10] < 0.01 * span
    bc = cos.betas.numpy()
    assert bc[T] == 0.999 and bc[: int(0.9 * T)].max() < 0.2  # "small until it shoots up" to the clip
    notes = S.look_for({"linear": lin, "cosine": cos, "sigmoid": sig})
    assert len(notes) == len(S.QUANTITIES)
    assert f"linear at t = {f_lin['t_half']}, cosine at t = {f_cos['t_half']}" in notes[1]


def test_schedule_lab_try_this_numbers():
    """The prompt: at t = T/2 the linear schedule's SNR is far below the cosine's, and at T = 100 (a tenth of the
    steps) abar at T/2 barely moves, because the sidebar scales the betas by 1000/T."""
    n = S.try_this_numbers()
    for (name, T), v in n.items():
        a = float(_default(T, name).alphas_cumprod[T // 2])
        assert v["t"] == T // 2 and v["abar"] == pytest.approx(a, rel=1e-12)
        assert v["signal"] == pytest.approx(math.sqrt(a)) and v["snr"] == pytest.approx(a / (1 - a))
    assert S.TRY_T * 10 == settings.DEFAULT.T  # "a tenth of the steps"
    assert n[("linear", 1000)]["snr"] < 0.1 and n[("cosine", 1000)]["snr"] > 0.9  # hard to read / readable
    assert n[("linear", 100)]["abar"] == pytest.approx(n[("linear", 1000)]["abar"], rel=0.1)  # "barely changes"
    assert n[("cosine", 100)]["abar"] == pytest.approx(n[("cosine", 1000)]["abar"], rel=1e-9)
    text = S.try_this()
    assert f"sqrt(ᾱ_t) = {n[('linear', 1000)]['signal']:.2f}" in text and f"T = {S.TRY_T}" in text


# --- home ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_story_returns_to_the_data():
    """The reverse half (DDIM with the exact denoiser of the point set) ends on the data points."""
    pytest.importorskip("toy_models.samplers")
    from lessons import home

    s = make_schedule("linear", 1000)
    pts = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    frames, labels = home.story_frames(pts, s, n_frames=10)
    assert labels[0] == "forward: t = 0" and labels[-1].startswith("reverse: t = 0")
    d = torch.cdist(torch.as_tensor(frames[-1]), pts.double()).min(1).values
    assert float(d.median()) < 0.05
    assert float(np.abs(frames[len(frames) // 2 - 1]).std()) > 0.5  # the middle is noise
    assert home.digit_times(1000, 6)[0] == 0 and home.digit_times(1000, 6)[-1] == 1000


def test_dict_built_figures_are_valid_plotly_and_keep_their_labels():
    """The per-t figures skip plotly's validation for speed (figures.fast_figure): rebuilding each WITH
    validation must succeed, and the axes, panels and traces must be what the page promises."""
    from lessons.figures import validated

    s = make_schedule("linear", 100)
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    xt = L.noised(s, x0, 40)
    img = torch.rand(1, 28, 28) * 2 - 1
    xt_img = L.noised(s, img[None], 40)[0, 0]
    r = L.chain_vs_closed(s, x0[0], 40, 200)
    figs = {
        "xt": L.fig_xt(x0.numpy(), xt, 40, float(s.alphas_cumprod[40])),
        "kl": L.fig_kl_curve([1, 10, 100], np.array([5.0, 1.0, 0.01]), 40),
        "chain": L.fig_chain_vs_closed(r),
        "digit": L.fig_digit(xt_img, 40),
        "pixels": L.fig_pixel_hist(img[0].numpy(), xt_img, 40),
        "row": L.fig_digit_row(np.stack([img[0].numpy(), xt_img]), [0, 40]),
    }
    for name, fig in figs.items():
        v = validated(fig)  # raises on a misspelt or invalid property
        assert v.to_dict()["data"], name
        lay = v.to_dict()["layout"]  # every axis that shows its numbers says what they measure
        for a in [k for k in lay if k.startswith(("xaxis", "yaxis"))]:
            ax = lay[a]
            if ax.get("visible") is False or ax.get("showticklabels") is False or ax.get("matches"):
                continue
            assert (ax.get("title") or {}).get("text"), (name, a)
    xt_fig = figs["xt"]
    assert xt_fig.layout.xaxis.title.text == "x₁" and xt_fig.layout.yaxis.title.text == "x₂"
    assert np.allclose(xt_fig.data[1].x, xt[:, 0], atol=1e-3)  # x_t drawn where it is
    # the marginals on the edges: x_1's histogram above the scatter (same x axis), x_2's beside it (same y axis)
    h1, h2 = xt_fig.data[2], xt_fig.data[3]
    assert (h1.type, h1.xaxis, h1.yaxis) == ("histogram", "x", "y2") and np.allclose(h1.x, xt[:, 0], atol=1e-3)
    assert (h2.type, h2.xaxis, h2.yaxis) == ("histogram", "x2", "y") and np.allclose(h2.y, xt[:, 1], atol=1e-3)
    assert xt_fig.layout.yaxis.domain[1] < xt_fig.layout.yaxis2.domain[0]  # above, not overlapping
    assert xt_fig.layout.xaxis.domain[1] < xt_fig.layout.xaxis2.domain[0]  # beside, not overlapping
    pdf_top, pdf_side = xt_fig.data[4], xt_fig.data[5]  # the N(0, 1) density on both edges, integrating to ~1
    assert np.trapezoid(pdf_top.y, pdf_top.x) == pytest.approx(1, abs=1e-3)
    assert np.allclose(pdf_side.x, pdf_top.y) and np.allclose(pdf_side.y, pdf_top.x)
    k = figs["kl"]
    assert k.layout.yaxis.type == "log" and k.layout.shapes[0].x0 == 40
    for name in ("xt", "kl"):  # what the t slider redraws: margins fixed, so plotly draws once a move
        assert figs[name].layout.margin.autoexpand is False, name
    row = figs["row"]  # the digits tiled into one heatmap, each labelled with its t under its centre
    assert list(row.layout.xaxis.ticktext) == ["t = 0", "t = 40"] and len(row.data) == 1
    z = np.asarray(row.data[0].z)[::-1]  # row 0 at the top
    centre = row.layout.xaxis.tickvals[1]
    assert np.allclose(z[:28, 30:58], np.clip(xt_img, -1.5, 1.5), atol=0.01) and 30 <= centre <= 58
    c = figs["chain"]
    assert c.data[0].xaxis == "x" and c.data[3].xaxis == "x2" and c.layout.yaxis2.matches == "y"
    assert np.allclose(c.data[3].x, r.closed[:, 0], atol=1e-3)


def test_forward_try_this_numbers_hold_at_the_settings_it_names():
    """The prompt: at T = 10 the scaled range is beta_1 = 0.01, beta_T = 0.999 (clipped) and abar_T is still ~0,
    with steps far bigger than at T = 1000; a constant beta = 0.01 keeps abar_T but drops the KL at t = 100 far
    below the linear schedule's. Checked against schedules built by hand (not through lessons.settings)."""
    from toy_models.gmm import default_gmm

    g = default_gmm()
    n = L.try_this_numbers(g)
    short = make_schedule("linear", 10, beta_start=1e-4 * 100, beta_end=0.999)  # 0.02 * 100 = 2, clipped
    assert (n["T"], n["beta_1"], n["beta_T"]) == (10, pytest.approx(0.01), pytest.approx(0.999))
    assert n["abar_T"] == pytest.approx(float(short.alphas_cumprod[10]), rel=1e-12) and n["abar_T"] < 1e-5
    assert n["step_sd"] == pytest.approx(math.sqrt(0.999)) and n["step_sd_default"] == pytest.approx(math.sqrt(0.02))
    const = make_schedule("linear", 1000, beta_start=0.01, beta_end=0.01)
    lin = make_schedule("linear", 1000)
    assert n["sum_constant"] == pytest.approx(10.0) and n["sum_linear"] == pytest.approx(10.05)
    assert n["abar_T_constant"] == pytest.approx(0.99**1000, rel=1e-9)
    assert n["abar_T_constant"] / n["abar_T_linear"] == pytest.approx(1, abs=0.15)  # "barely moves"
    assert n["t"] == 100
    assert n["kl_constant"] == pytest.approx(L.gmm_kl_curve(g, const, [100])[0], rel=1e-12)
    assert n["kl_linear"] == pytest.approx(L.gmm_kl_curve(g, lin, [100])[0], rel=1e-12)
    assert n["kl_constant"] < n["kl_linear"] / 10  # "the noise comes early"
    text = L.try_this(g)
    for quoted in ("β_1 = 0.01", "β_T = 0.999", f"ᾱ_T = {n['abar_T']:.2g}", f"{n['kl_constant']:.2g} nats"):
        assert quoted in text, quoted


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_the_exact_denoiser_of_a_point_set_only_returns_training_points(sampler):
    """The home page's claim: the exact eps* of a finite training set (a mixture of point masses) has a reverse
    chain that, run with all T = 1000 steps, ends on training points: every sample lands on one (within 1e-6,
    against about 0.3 between neighbouring points)."""
    from lessons import home
    from toy_models.gmm import AnalyticModel, GaussianMixture
    from toy_models.samplers import sample_ddim, sample_ddpm

    assert "A perfect network would only copy" in home.STORY and "T = 1000 steps" in home.STORY
    s = settings.build_schedule(settings.DEFAULT)
    pts = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = AnalyticModel(GaussianMixture.from_points(pts), s)
    x_T = torch.randn(60, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    f = sample_ddim if sampler == "ddim" else sample_ddpm
    x0 = f(model, s, x_T, steps=s.T, generator=torch.Generator().manual_seed(2))
    d = torch.cdist(x0, pts).min(1).values
    assert float(d.max()) < 1e-6, float(d.max())
    spacing = torch.cdist(pts, pts).fill_diagonal_(math.inf).min(1).values
    assert float(spacing.min()) > 1e-2


def test_lesson_equations_render_with_katex(tmp_path):
    """Every display equation of lessons 1 and 2 parses with the KaTeX that streamlit ships."""
    from tests.helpers import katex_report

    eqs = [L.EQ_STEP, L.EQ_CLOSED, L.EQ_KL, S.EQ_ABAR, S.EQ_COSINE]
    assert all(r["ok"] for r in katex_report(eqs, tmp_path))
    assert r"\delta" in S.EQ_COSINE and "s}" not in S.EQ_COSINE  # the offset is shown as delta
