"""Unit tests of the score lesson: fields against the exact score and finite differences, the DSM identity
and Vincent's theorem, Langevin recovering the mixture's weights, ODE log-likelihoods against the closed
form, the schedule mapping, and every figure finite and under the payload limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import score as L
from lessons.figures import MAX_PAYLOAD_BYTES, assert_no_nan, payload_bytes
from toy_models.gmm import AnalyticModel, default_gmm
from toy_models.likelihood import dequantize_8bit
from toy_models.schedules import make_schedule

S = make_schedule("linear", 1000)
G = default_gmm()
EXACT = AnalyticModel(G, S)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops on a shared 2-core machine
    yield
    torch.set_num_threads(n)


class OffsetEps(torch.nn.Module):
    """eps* + delta: a 'learned' model whose score error is known, s_theta - s = -delta / sqrt(1 - abar)."""

    parameterization = "eps"

    def __init__(self, exact, delta):
        super().__init__()
        self.exact, self.delta = exact, torch.as_tensor(delta, dtype=torch.float64)

    def forward(self, x, t, y=None):
        return self.exact(x, t, y) + self.delta.to(x.dtype)


DELTA = torch.tensor([0.1, -0.05])


# --- 1. fields ----------------------------------------------------------------------------------------
def test_exact_models_field_equals_exact_score_and_finite_differences():
    fc = L.compare_fields(EXACT, EXACT, S, 37, n_grid=9, n_samples=200)
    np.testing.assert_allclose(fc.learned, fc.exact, atol=1e-9, rtol=1e-9)
    assert fc.fisher < 1e-20 and fc.eps_mse < 1e-20
    # the exact score itself against central differences of log q_t (independent of gmm.score)
    a = float(S.alphas_cumprod[37])
    x = torch.as_tensor(fc.points[::7])
    h = 1e-5
    fd = torch.stack(
        [(G.log_prob(x + h * e, a) - G.log_prob(x - h * e, a)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)], 1
    )
    np.testing.assert_allclose(fc.exact[::7], fd.numpy(), rtol=1e-5, atol=1e-5)


def test_learned_field_error_is_measured_not_assumed():
    model = OffsetEps(EXACT, DELTA)
    t = 20
    fc = L.compare_fields(model, EXACT, S, t, n_grid=7, n_samples=300)
    a = float(S.alphas_cumprod[t])
    expected = float((DELTA**2).sum()) / (1 - a)  # |delta|^2 / (1 - abar): exact, every point
    assert fc.fisher == pytest.approx(expected, rel=1e-6)
    assert fc.eps_mse == pytest.approx(float((DELTA**2).sum()), rel=1e-6)
    np.testing.assert_allclose(fc.error, math.sqrt(expected), rtol=1e-6)
    e = L.error_vs_t(model, EXACT, S, [1, 10, 100, 1000], n=100)
    np.testing.assert_allclose(
        e["fisher"], float((DELTA**2).sum()) / (1 - S.alphas_cumprod[[1, 10, 100, 1000]].numpy()), rtol=1e-6
    )
    assert e["fisher"][0] > 100 * e["fisher"][-1]  # the same eps error is a far larger score error at small t


def test_model_on_another_schedule_is_evaluated_at_equal_alpha_bar():
    trained = make_schedule("cosine", 500)
    wrapped = L.OnSchedule(AnalyticModel(G, trained), trained, S)
    t = torch.tensor([1.0, 17.0, 250.0, 999.0])
    np.testing.assert_allclose(trained.alpha_bar(wrapped.trained_time(t)).numpy(), S.alpha_bar(t).numpy(), rtol=1e-9)
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for tt in (3, 300):
        got = L.model_score(wrapped, S, x, tt)
        np.testing.assert_allclose(got.numpy(), EXACT.score(x, tt).numpy(), rtol=1e-5, atol=1e-6)


def test_score_scale_and_bad_times():
    t, f = L.score_scale(S)
    assert t[0] == 1 and t[-1] == 1000
    np.testing.assert_allclose(f, 1 / np.sqrt(1 - S.alphas_cumprod[1:].numpy()))
    x = torch.zeros(3, 2, dtype=torch.float64)
    for bad in (0, -1, 1001, float("nan")):
        with pytest.raises(ValueError, match="t must lie"):
            L.model_score(EXACT, S, x, bad)
    assert L.log_times(1) == [1] and L.log_times(1000)[-1] == 1000


# --- 2. denoising score matching -------------------------------------------------------------------------
def test_dsm_is_the_eps_loss_reweighted_and_its_excess_is_the_fisher_divergence():
    d = L.dsm_check(OffsetEps(EXACT, DELTA), EXACT, S, 30, n=4000, seed=1)
    assert d.dsm == pytest.approx(d.weight * d.eps_loss, rel=1e-10)
    assert d.weight == pytest.approx(1 / (1 - float(S.alphas_cumprod[30])))
    assert abs((d.dsm - d.dsm_exact) - d.fisher) < 4 * d.excess_se
    assert d.fisher == pytest.approx(float((DELTA**2).sum()) * d.weight, rel=1e-6)
    # the exact model's loss floor is not zero: the target -eps / sqrt(1 - abar) is noisy given x_t
    assert d.dsm_exact > 1.0


# --- 3. Langevin ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_langevin_with_the_exact_score_recovers_the_component_weights():
    r = L.langevin_run(EXACT, S, G, n=2000, levels=50, n_steps_each=4, step_rule="snr", snr=0.3, seed=0)
    se = np.sqrt(r.true_weights * (1 - r.true_weights) / 2000)
    assert r.escaped == 0.0
    assert (np.abs(r.weights - r.true_weights) < 4 * se + 0.01).all(), (r.weights, r.true_weights)
    assert r.mean_log_q > r.data_log_q - 0.6  # on the data (a bit blurred: 4 steps per level, no final denoising)
    assert r.nfe == 200 and r.paths.shape[1:] == (6, 2)


def test_langevin_with_too_large_a_step_blows_up_and_figures_stay_finite():
    s = make_schedule("linear", 50)
    r = L.langevin_run(AnalyticModel(G, s), s, G, n=200, levels=20, n_steps_each=3, step_size=1e-2, step_rule="sigma")
    assert r.escaped > 0.5
    for fig in (L.fig_langevin(r, G.sample(100)[0].numpy()), L.fig_weights(r)):
        assert_no_nan(fig)
    with pytest.raises(ValueError, match="step_rule"):
        L.langevin_run(EXACT, S, G, n=4, step_rule="big")


# --- 4. ODE against DDPM ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ode_and_ddpm_from_the_same_noise_reach_q_t():
    s = make_schedule("linear", 100, beta_start=1e-4, beta_end=0.2)
    fp = L.ode_vs_ddpm(AnalyticModel(G, s), s, n=400, seed=0, ode_steps=50)
    np.testing.assert_array_equal(fp.ode_x[0], fp.ddpm_x[0])  # the same x_T
    assert fp.ode_t[0] == 100 and fp.ode_t[-1] == 0 and fp.ddpm_t[-1] == 0
    assert not np.allclose(fp.ode_x[-1], fp.ddpm_x[-1])
    for t in (0, 30):
        _, xo = L.state_at(fp.ode_t, fp.ode_x, t)
        _, xd = L.state_at(fp.ddpm_t, fp.ddpm_x, t)
        mc = L.marginal_check(G, s, t, {"ode": xo, "ddpm": xd})
        ref = mc.pop("q(x_t) itself (20,000 exact draws)")
        for v in mc.values():  # mean log q_t of 400 draws: sd of log q about 1, so 4 sd / sqrt(400) = 0.2
            assert abs(v - ref) < 0.25, (t, mc, ref)
    assert_no_nan(L.fig_flow(fp))


# --- 5. likelihood ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ode_nll_of_the_exact_model_within_002_nats():
    x = torch.cat(
        [
            G.sample(12, torch.Generator().manual_seed(3))[0],
            torch.tensor([[0.0, 0.0], [2.5, -2.5]], dtype=torch.float64),
        ]
    )
    r = L.ode_log_px(L.exact_ode_model(G, S), S, x, rtol=1e-5)
    err = np.abs(r.log_px - G.log_prob(x).numpy())
    assert err.max() < 0.02, err
    assert abs(r.log_px.mean() - G.log_prob(x).mean().item()) < 0.02 and r.nfe > 10


@pytest.mark.slow
def test_density_grid_matches_the_true_density_and_nll_table():
    ax, r = L.density_grid(L.exact_ode_model(G, S), S, n=9, rtol=1e-4)
    true = G.log_prob(L.grid(L.HALF_WIDTH, 9)[1]).numpy()
    assert ax.shape == (9,) and r.log_px.shape == (81,)
    near = true > true.max() - 12  # where the heatmap shows colour; far out the solver's relative tolerance
    assert near.sum() > 10 and np.abs(r.log_px - true)[near].max() < 0.05  # and the prior mismatch grow
    s = make_schedule("linear", 200)
    x = G.sample(64, torch.Generator().manual_seed(0))[0]
    elbo = L.elbo_nll(AnalyticModel(G, s), s, x, stride=5)
    table = L.nll_table(G, x, {"exact": G.log_prob(x).numpy()}, {"exact": float(elbo.mean())})
    bpd = table.bpd()
    nll = float(-G.log_prob(x).mean())
    assert table.rows["true −log q(x₀) (closed form)"] == pytest.approx(nll)
    assert bpd["ODE: exact"] == pytest.approx(nll / (2 * math.log(2)))
    assert table.rows["ELBO bound: exact"] > nll - 0.05  # a bound from above (up to Monte Carlo noise)
    fig = L.fig_density_pair(ax, {"true": true, "ode": r.log_px})
    assert_no_nan(fig)
    assert payload_bytes(fig) < MAX_PAYLOAD_BYTES
    assert_no_nan(L.fig_nll(table))


@pytest.mark.slow
def test_a_network_on_another_schedule_runs_through_the_ode():
    from toy_models.networks import MLP2D, MLPConfig

    torch.manual_seed(0)
    net = MLP2D(MLPConfig(width=32, n_blocks=1, num_classes=5)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # an untrained but non-zero network
        net.out.weight.normal_(0, 0.1)
    s = make_schedule("linear", 100)
    wrapped = L.OnSchedule(net, S, s)
    x = G.sample(4, torch.Generator().manual_seed(1))[0]
    r = L.ode_log_px(wrapped, s, x, rtol=1e-3, y=torch.full((4,), 5))
    assert np.isfinite(r.log_px).all() and r.nfe > 0
    fc = L.compare_fields(wrapped, AnalyticModel(G, s), s, 10, n_grid=5, n_samples=100)
    assert fc.fisher > 0 and np.isfinite(fc.learned).all()


def test_elbo_matches_the_plain_sum_of_toy_models_elbo():
    from toy_models.elbo import elbo_terms

    s = make_schedule("linear", 300)
    m = AnalyticModel(G, s)
    x = G.sample(64, torch.Generator().manual_seed(0))[0]
    full = L.elbo_nll(m, s, x, stride=1)
    strided = L.elbo_nll(m, s, x, stride=7, exact_head=50, seed=3)
    ref = elbo_terms(s, m, x, generator=torch.Generator().manual_seed(1)).total.numpy()  # independent draws
    se = math.sqrt(full.var() / 64 + ref.var() / 64)
    assert abs(full.mean() - ref.mean()) < 4 * se
    assert abs(strided.mean() - full.mean()) < 4 * math.sqrt(full.var() / 64 + strided.var() / 64)
    assert full.mean() > float(-G.log_prob(x).mean())  # the bound is above the true NLL
    with pytest.raises(ValueError, match="stride"):
        L.elbo_nll(m, s, x, stride=0)


class GaussianImageEps(torch.nn.Module):
    """Exact eps for i.i.d. N(m, v) pixels: q_t = N(sqrt(abar) m, abar v + 1 - abar) per pixel; differentiable."""

    parameterization = "eps"

    def __init__(self, s, m, v):
        super().__init__()
        self.s, self.m, self.v = s, m, v

    def forward(self, x, t, y=None):
        a = self.s.alpha_bar(t.to(torch.float64).cpu()).reshape(-1, 1, 1, 1).to(x.dtype)
        return (1 - a).sqrt() * (x - a.sqrt() * self.m) / (a * self.v + 1 - a)


def test_mnist_bits_per_dim_matches_the_closed_form_for_gaussian_pixels():
    s = make_schedule("linear", 200, beta_start=1e-4, beta_end=0.1)
    m, v = 0.1, 0.2
    g = torch.Generator().manual_seed(5)
    x0 = (
        torch.round((m + math.sqrt(v) * torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)).clamp(-1, 1) * 127.5)
        / 127.5
    )
    calls = []
    r = L.mnist_bits_per_dim(
        GaussianImageEps(s, m, v), s, x0, n_probes=1, rtol=1e-5, elbo_stride=5, seed=9, progress=calls.append
    )
    # the same dequantization as the ODE used (first draw of the seeded generator), then the closed form
    x = dequantize_8bit(x0, torch.Generator().manual_seed(9))
    logp = (-0.5 * (math.log(2 * math.pi * v) + (x - m) ** 2 / v)).reshape(2, -1).sum(1)
    D = 16
    bpd = -(logp + D * math.log(1 / 127.5)) / (D * math.log(2))
    # a diagonal Jacobian makes Hutchinson's Rademacher estimate exact; the rest is the prior mismatch (abar_T > 0)
    np.testing.assert_allclose(r.ode_bpd, bpd.numpy(), atol=0.01)
    assert np.isfinite(r.elbo_bpd).all() and (r.elbo_bpd > 0).all()
    assert calls and calls[-1] == pytest.approx(1.0) and min(calls) >= 0


def test_ode_ready_flags_an_underflowing_schedule():
    assert L.ode_ready(S) is None
    bad = make_schedule("linear", 2000, beta_start=1e-5, beta_end=0.999)
    assert "underflows" in L.ode_ready(bad)


# --- figures ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [1, 100, 1000])
def test_field_figures_are_finite_and_small(t):
    fc = L.compare_fields(OffsetEps(EXACT, DELTA), EXACT, S, t, n_grid=21, n_samples=200)
    e = L.error_vs_t(OffsetEps(EXACT, DELTA), EXACT, S, L.log_times(S.T, 6), n=50)
    figs = [
        L.fig_fields(fc, L.q_t_samples(G, S, t, 800).numpy()),
        L.fig_error_map(fc),
        L.fig_scale(*L.score_scale(S), t),
        L.fig_error_vs_t(e, t),
    ]
    for fig in figs:
        assert_no_nan(fig)
        assert payload_bytes(fig) < MAX_PAYLOAD_BYTES / 4
        assert fig.layout.xaxis.title.text  # labelled axes


# --- the text's claims: continuous time, dequantization, the bound, the "Try this" prompts -------------------
def test_continuous_rate_is_minus_log_alpha_and_reproduces_alpha_bar():
    """beta(t) = -log(1 - beta_t) on (t-1, t] (Schedule.beta_continuous), exp(-integral) = abar_T, and the
    quoted example is the largest relative gap: 1% at the default linear end, x6.9 at the cosine end."""
    r = L.continuous_rate(S)
    assert r["t"] == 1000 and r["beta"] == pytest.approx(0.02, rel=1e-12)
    assert r["rate"] == pytest.approx(-math.log(1 - 0.02), rel=1e-12)
    assert r["rate"] == pytest.approx(float(S.beta_continuous(torch.tensor(999.5))), rel=1e-12)
    rates = -np.log1p(-S.betas[1:].numpy())
    assert math.exp(-rates.sum()) == pytest.approx(float(S.alphas_cumprod[S.T]), rel=1e-9)
    assert r["ratio"] == pytest.approx((rates / S.betas[1:].numpy()).max(), rel=1e-12)
    cos = make_schedule("cosine", 1000)
    c = L.continuous_rate(cos)
    assert c["beta"] == pytest.approx(0.999) and c["rate"] == pytest.approx(-math.log(0.001), rel=1e-9)
    text = L.rate_example(S, cos)
    assert "β(t) = −log(1 − β_t) = 0.0202, 1.0% more" in text and "6.908" in text


def test_the_quoted_dequantization_offset_is_the_codes():
    """bits/dim of 8-bit data = -log p(x) / (D ln 2) + log2(127.5): the offset the text quotes, read from the ODE."""
    from toy_models.likelihood import ode_log_likelihood

    s = make_schedule("linear", 200, beta_start=1e-4, beta_end=0.1)
    x0 = torch.round(torch.linspace(-0.5, 0.5, 16, dtype=torch.float64).reshape(1, 1, 4, 4) * 127.5) / 127.5
    r = ode_log_likelihood(
        GaussianImageEps(s, 0.1, 0.2),
        s,
        x0,
        rtol=1e-4,
        atol=1e-4,
        divergence="hutchinson",
        data_kind="image8bit",
        generator=torch.Generator().manual_seed(0),
    )
    offset = float(r.bits_per_dim[0]) + float(r.log_px[0]) / (16 * math.log(2))
    assert offset == pytest.approx(L.dequantization_bits(), abs=1e-9)
    assert L.dequantization_bits() == pytest.approx(6.99435, abs=1e-5)
    assert "log₂ 127.5 = 6.994 bits" in L.density_text()


def test_look_nll_reports_what_the_table_shows():
    t = L.NllTable(
        {
            "true −log q(x₀) (closed form)": 1.0,
            "ODE: exact model": 1.01,
            "ELBO bound: exact model": 2.0,
            "ODE: learned model": 3.0,
            "ELBO bound: learned model": 2.5,
        },
        2,
    )
    text = L.look_nll(t)
    assert "exact model's ODE NLL (1.010 nats) came out below its ELBO (2.000)" in text
    assert "learned model's ODE NLL (3.000 nats) came out above its ELBO (2.500)" in text


def _page_model(T=1000):
    """The model the score page runs at the sidebar's T: the shipped 'gmm' at equal alpha-bar."""
    from lessons.settings import FrameState, build_schedule
    from tests.helpers import shipped_or_skip

    ck = shipped_or_skip("gmm")
    s = build_schedule(FrameState(T=T))
    return L.OnSchedule(ck.model, ck.schedule, s), AnalyticModel(G, s), s


def test_try_this_t1_error_is_largest_far_from_the_data():
    """Prompt 1: at t = 1 (the page's fields(): n_grid 21, 1,000 draws, seed 0) the median error far from the
    data is several times the one inside the contours."""
    model, exact, s = _page_model()
    fc = L.compare_fields(model, exact, s, 1, n_grid=21, n_samples=1000, seed=0)
    assert fc.error_where(False) > 3 * fc.error_where(True)


def test_try_this_langevin_step_notches():
    """Prompt 2, with the page's run (500 particles, 100 levels, 5 steps each, rule sigma): at NOTCH_FAILS every
    particle escapes and the bars are zero; one notch back the weights are recovered to within 0.05."""
    assert L.STEP_SIZES.index(L.NOTCH_FAILS) == L.STEP_SIZES.index(L.NOTCH_WORKS) + 1
    model, _, s = _page_model()
    bad = L.langevin_run(model, s, G, n=500, levels=100, n_steps_each=5, step_size=L.NOTCH_FAILS, seed=0)
    assert bad.escaped == 1.0 and (bad.weights == 0).all()
    good = L.langevin_run(model, s, G, n=500, levels=100, n_steps_each=5, step_size=L.NOTCH_WORKS, seed=0)
    assert good.escaped == 0.0 and good.weight_error < 0.05


def test_try_this_loose_tolerance_costs_little():
    """Prompt 3: at rtol 1e-2 the solver takes fewer evaluations than at the default 1e-4, and the mean NLL of the
    page's 256 points moves by less than 0.05 nats, for both models."""
    model, _, s = _page_model()
    x = G.sample(256, generator=torch.Generator().manual_seed(0 + 7))[0]
    for m in (model, L.exact_ode_model(G, s)):
        tight, loose = L.ode_log_px(m, s, x, 1e-4), L.ode_log_px(m, s, x, 1e-2)
        assert loose.nfe < tight.nfe
        assert abs(np.mean(loose.log_px) - np.mean(tight.log_px)) < 0.05


def test_try_this_T50_moves_ddpm_not_the_ode():
    """Prompt 4, the page's flows() at T = 1000 and T = 50 (400 points, seed 0, Heun 100 steps), clouds at t = 0:
    the ODE's mean log q(x_0) moves by < 0.05 nats, DDPM's by > 0.2 and ends above the data's."""
    out = {}
    for T in (1000, 50):
        model, _, s = _page_model(T)
        fp = L.ode_vs_ddpm(model, s, n=400, seed=0, ode_steps=100)
        assert fp.ode_steps == min(100, T)
        mc = L.marginal_check(
            G,
            s,
            0,
            {"ode": L.state_at(fp.ode_t, fp.ode_x, 0)[1], "ddpm": L.state_at(fp.ddpm_t, fp.ddpm_x, 0)[1]},
            seed=0,
        )
        out[T] = mc
    ref = out[1000]["q(x_t) itself (20,000 exact draws)"]
    assert abs(out[50]["ode"] - out[1000]["ode"]) < 0.05
    assert abs(out[50]["ddpm"] - out[1000]["ddpm"]) > 0.2
    assert out[50]["ddpm"] > ref + 0.1
