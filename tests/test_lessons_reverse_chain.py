"""Unit tests of lesson 3 (the reverse chain): values against closed forms and independent computations
(Bayes' rule on a grid, Gaussian conditioning, the samplers themselves), figures without NaN and under
the payload limit, bad inputs raising ValueError."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import reverse_chain as L
from lessons.figures import MAX_PAYLOAD_BYTES, assert_no_nan, payload_bytes
from toy_models.diffusion import p_mean_variance
from toy_models.gmm import AnalyticModel, default_gmm, kl_mixture_to_gaussian
from toy_models.samplers import SamplerStep, sample_ddim, sample_ddpm
from toy_models.schedules import make_schedule

GMM = default_gmm()
LIN = make_schedule("linear", 1000)


# --- the fast exact model ---------------------------------------------------------------------------
@pytest.mark.parametrize("sched", [LIN, make_schedule("cosine", 50)])
def test_mixture_eps_model_equals_analytic_model(sched):
    fast, ref = L.MixtureEpsModel(GMM, sched), AnalyticModel(GMM, sched)
    x = torch.randn(257, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    for t in (0.0, 1.0, sched.T / 2, float(sched.T)):
        tt = torch.full((257,), t, dtype=torch.float64)
        assert torch.allclose(fast(x, tt), ref(x, tt), atol=1e-9, rtol=0)
    tt = torch.rand(257, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sched.T  # mixed, real t
    assert torch.allclose(fast(x, tt), ref(x, tt), atol=1e-9, rtol=0)
    assert fast(x.float(), tt.float()).dtype == torch.float32
    for t in (1, sched.T // 2):  # a sampler's call: an int t expanded over the batch, in float32 (the tables' copy)
        t32 = torch.tensor(float(t)).expand(257)
        ref64 = ref(x, torch.full((257,), float(t), dtype=torch.float64))
        assert torch.allclose(fast(x.float(), t32).double(), ref64, atol=2e-5, rtol=1e-4)


def test_mixture_eps_model_rejects_labels_and_bad_t():
    m = L.MixtureEpsModel(GMM, LIN)
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="unconditional"):
        m(x, torch.ones(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="t must lie"):
        m(x, torch.full((3,), 1001.0))


# --- step sizes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 2, 7, 1000])
def test_rescaled_schedule_keeps_the_total_noise(T):
    s = L.rescaled_schedule(LIN, T)
    assert s.T == T
    assert math.isclose(float(s.alphas_cumprod[T]), float(LIN.alphas_cumprod[1000]), rel_tol=1e-9)
    if T == 1000:  # the reference itself
        assert torch.allclose(s.betas, LIN.betas, atol=1e-12)


@pytest.mark.parametrize("T,level", [(1, 1.0), (2, 0.5), (2, 0.3), (10, 0.5), (1000, 0.05)])
def test_one_step_schedule_ends_at_the_level_and_covers_one_Tth(T, level):
    s = L.one_step_schedule(LIN, T, level)
    abar = lambda u: float(LIN.alpha_bar(torch.tensor(u * 1000.0)))  # noqa: E731
    assert math.isclose(float(s.alphas_cumprod[s.T]), abar(level), rel_tol=1e-9)
    start = max(level - 1.0 / T, 0.0)
    assert math.isclose(float(s.alphas_cumprod[s.T - 1]), abar(start) if start > 1e-12 else 1.0, rel_tol=1e-9)


def test_step_for_level():
    assert L.step_for_level(2, 0.5) == 1 and L.step_for_level(1000, 0.5) == 500
    assert L.step_for_level(10, 0.01) == 1 and L.step_for_level(10, 1.0) == 10


# --- the exact reverse step ---------------------------------------------------------------------------
@pytest.mark.parametrize("T,x_t", [(2, (0.0, 0.0)), (10, (1.0, -0.5)), (1000, (0.3, 0.2))])
def test_reverse_step_grid_is_bayes_rule(T, x_t):
    """q(x_{t-1} | x_t) on the grid = q_{t-1}(x_{t-1}) q(x_t | x_{t-1}) / normaliser, computed independently."""
    r = L.reverse_step(GMM, LIN, T, 0.5, x_t, n_grid=61)
    s = L.one_step_schedule(LIN, T, 0.5)
    t = s.T
    prior = GMM.noised(float(s.alphas_cumprod[t - 1])) if t > 1 else GMM
    yy, xx = np.meshgrid(r.gy, r.gx, indexing="ij")
    pts = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1))
    a, b = float(s.alphas[t]), float(s.betas[t])
    lik = -((torch.tensor(x_t) - math.sqrt(a) * pts) ** 2).sum(1) / (2 * b)
    logp = prior.log_prob(pts) + lik
    dA = (r.gx[1] - r.gx[0]) * (r.gy[1] - r.gy[0])
    p = torch.softmax(logp, 0).numpy().reshape(r.log_exact.shape) / dA
    exact = np.exp(r.log_exact)
    mass = exact.sum() * dA
    assert mass > 0.95  # the grid holds the conditional
    assert np.abs(p * mass - exact).max() < 0.02 * exact.max()


def test_kl_to_gaussian_fit_decreases_as_T_grows():
    c = L.kl_vs_steps(GMM, LIN, 0.5, [0.0, 0.0])
    assert np.all(np.diff(c.kl_mean) < 0), c.kl_mean
    assert np.all(np.diff(c.kl_point) < 0), c.kl_point
    assert np.all(np.diff(c.betas) < 0)
    assert c.kl_mean[0] > 0.1 and c.kl_mean[-1] < 1e-6  # few big steps: far from Gaussian; many small: Gaussian


def test_reverse_step_kl_agrees_with_monte_carlo():
    r = L.reverse_step(GMM, LIN, 2, 0.5, [0.0, 0.0])
    mc, se = kl_mixture_to_gaussian(
        r.exact, torch.tensor(r.fit_mean), torch.tensor(r.fit_cov), n=40_000, generator=torch.Generator().manual_seed(0)
    )
    assert abs(r.kl - mc) < 5 * se + 1e-3
    assert r.n_modes_weight >= 2  # T = 2 at the origin: several clusters could have produced x_t
    assert L.reverse_step(GMM, LIN, 1000, 0.5, [0.0, 0.0]).kl < 1e-8


# --- the posterior given x_0 ------------------------------------------------------------------------
@pytest.mark.parametrize("t", [1, 2, 100, 1000])
def test_posterior_view_is_gaussian_conditioning(t):
    """Product of N(x_{t-1}; sqrt(abar_{t-1}) x0, (1 - abar_{t-1}) I) and N(x_t; sqrt(alpha_t) x_{t-1}, beta_t I)."""
    x0, xt = np.array([1.5, 1.0]), np.array([-1.0, -0.5])
    p = L.posterior_view(LIN, x0, xt, t)
    ap, a, b = float(LIN.alphas_cumprod[t - 1]), float(LIN.alphas[t]), float(LIN.betas[t])
    if t == 1:
        assert np.allclose(p.mean, x0, atol=1e-12) and p.var == 0.0 and math.isclose(p.fraction_to_x0, 1.0)
        return
    prec = 1 / (1 - ap) + a / b
    mean = (math.sqrt(ap) * x0 / (1 - ap) + math.sqrt(a) * xt / b) / prec
    assert np.allclose(p.mean, mean, atol=1e-10)
    assert math.isclose(p.var, 1 / prec, rel_tol=1e-9)
    assert p.var < p.beta_t


# --- the chain: the sampler's own numbers -------------------------------------------------------------
def test_ddpm_chain_is_the_samplers_own():
    s = make_schedule("linear", 60, beta_start=1e-3, beta_end=0.2)
    m = L.MixtureEpsModel(GMM, s)
    run = L.ddpm_chain(m, s, 300, seed=5)
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(5))
    steps = []
    out = sample_ddpm(m, s, x_T, generator=torch.Generator().manual_seed(6), callback=steps.append)
    assert np.array_equal(run.xs[0], x_T.numpy()) and np.array_equal(run.xs[-1], out.numpy())
    assert len(run.ts) == 61 and run.ts[0] == 60 and run.ts[-1] == 0
    for k in (0, 17, 59):
        st: SamplerStep = steps[k]
        assert np.array_equal(run.xs[k], st.x_t.numpy()) and np.array_equal(run.pred_x0[k], st.pred_x0.numpy())
    # the exact model's x0-prediction is Tweedie's E[x_0 | x_t]
    k = 30
    tweedie = AnalyticModel(GMM, s).denoise(torch.tensor(run.xs[k], dtype=torch.float64), float(run.ts[k]))
    assert np.allclose(run.pred_x0[k], tweedie.numpy(), atol=1e-4)
    # the drift arrows are p_theta's mean minus x_t
    t = int(run.ts[k])
    pm = p_mean_variance(s, m, torch.tensor(run.xs[k], dtype=torch.float64), t)
    assert np.allclose(L.mean_drift(s, run.xs[k], run.pred_x0[k], t), (pm.mean.numpy() - run.xs[k]), atol=1e-5)


@pytest.mark.slow
def test_exact_chain_samples_the_mixture():
    """2,000 exact-model DDPM samples recover the mixture's weights and its mean log-density."""
    s = make_schedule("linear", 200, beta_start=1e-4, beta_end=0.1)
    run = L.ddpm_chain(L.MixtureEpsModel(GMM, s), s, 2000, seed=0)
    x = torch.tensor(run.xs[-1], dtype=torch.float64)
    comp = GMM.responsibilities(x).argmax(1) if hasattr(GMM, "responsibilities") else None
    if comp is not None:
        freq = torch.bincount(comp, minlength=5).double() / 2000
        assert torch.allclose(freq, GMM.weights, atol=0.035), freq
    ref = GMM.log_prob(GMM.sample(20_000, generator=torch.Generator().manual_seed(1))[0]).mean()
    assert abs(float(GMM.log_prob(x).mean() - ref)) < 0.15


def test_chain_index_of():
    run = L.ChainRun(np.array([10.0, 5.0, 0.0]), np.zeros((3, 1, 2), np.float32), np.zeros((2, 1, 2), np.float32), 0)
    assert run.index_of(10) == 0 and run.index_of(6) == 1 and run.index_of(0) == 2


# --- MNIST chain with a tiny random U-Net (shape, stride, same numbers) -------------------------------
def tiny_unet():
    from toy_models.networks import UNet, UNetConfig

    torch.manual_seed(0)
    return UNet(UNetConfig(channels=[8, 8], attention=False, num_classes=10, time_embed_dim=16)).eval()


@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("ddim", 40), ("ddpm", None)])
def test_digit_chain_bounded_memory_and_same_numbers(sampler, steps):
    s = make_schedule("linear", 40, beta_start=1e-3, beta_end=0.3)
    net = tiny_unet()
    seen = []
    ch = L.digit_chain(net, s, [3, 7], seed=2, sampler=sampler, steps=steps, max_kept=11, progress=seen.append)
    n = 40 if sampler == "ddpm" else steps
    assert ch.steps == n and math.isclose(seen[-1], 1.0) and len(seen) == n
    assert len(ch.ts) <= 12 and ch.ts[0] == 40 and ch.ts[-1] == 0
    assert ch.xs.dtype == np.uint8 and ch.xs.shape[1:] == (2, 28, 28)
    assert ch.nbytes == ch.xs.nbytes + ch.pred_x0.nbytes <= 2 * 12 * 2 * 784
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([3, 7])
    g = torch.Generator().manual_seed(3)
    if sampler == "ddpm":
        out = sample_ddpm(net, s, x_T, y=y, generator=g, clip_x0=(-1.0, 1.0))
    else:
        out = sample_ddim(net, s, x_T, steps=steps, y=y, generator=g, clip_x0=(-1.0, 1.0))
    assert np.abs(ch.xs[-1].astype(int) - L.to_uint8(out[:, 0].half())).max() <= 1  # float16 storage, then uint8
    assert np.array_equal(ch.xs[0], L.to_uint8(x_T[:, 0].half()))


def test_uint8_round_trip():
    x = torch.linspace(-1, 1, 256)
    assert np.abs(L.from_uint8(L.to_uint8(x)) - x.numpy()).max() <= 1 / 127.5 / 2 + 1e-6
    assert L.to_uint8(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]


def test_pick_rows_and_mosaic():
    ts = np.array([100.0, 80, 60, 40, 20, 0])
    assert L.pick_rows(ts, [100, 99, 50, 0]) == [0, 2, 5] or L.pick_rows(ts, [100, 99, 50, 0]) == [0, 3, 5]
    m = L.mosaic(np.ones((2, 3, 28, 28), np.float32), pad=2)
    assert m.shape == (60, 90) and m.sum() == 6 * 784 - (60 * 90 - 6 * 784)


# --- figures ---------------------------------------------------------------------------------------
def test_figures_have_no_nan_labelled_axes_and_small_payloads():
    s = make_schedule("linear", 100, beta_start=1e-3, beta_end=0.1)
    run = L.ddpm_chain(L.MixtureEpsModel(GMM, s), s, 2000, seed=0)
    figs = [
        L.fig_reverse_step(L.reverse_step(GMM, LIN, 2, 0.5, [0, 0])),
        L.fig_kl_curve(L.kl_vs_steps(GMM, LIN, 0.5, [0, 0], Ts=(2, 10, 100), n_points=2), 10),
        L.fig_posterior(L.posterior_view(LIN, [1, 1], [0, 0], 10)),
        L.fig_pick_xt(np.zeros((5, 2)), [0, 0], 0.5),
        L.fig_chain_step(run, s, 50, "exact", np.zeros((10, 2))),
        L.fig_chain_step(run, s, 100, "exact"),
        L.fig_chain_animation(run, "exact"),
        L.fig_paths(run, [0, 1, 2], "exact"),
    ]
    for f in figs:
        assert_no_nan(f)
        assert payload_bytes(f) < MAX_PAYLOAD_BYTES
        assert f.layout.xaxis.title.text and f.layout.yaxis.title.text
    assert "T = 2" in figs[0].layout.title.text


def test_digit_grid_figure():
    s = make_schedule("linear", 20, beta_start=1e-3, beta_end=0.3)
    ch = L.digit_chain(tiny_unet(), s, [0, 1, 2], seed=0, sampler="ddim", steps=4)
    f = L.fig_digit_grid(ch, [0, 2, 4], "ddim")
    assert_no_nan(f)
    assert list(f.layout.yaxis.ticktext) == ["t = 20", "t = 10", "t = 0"]
    assert f.layout.yaxis.title.text == "time step t" and f.layout.xaxis2.title.text.startswith("digit")
    # the chain's own uint8 pixels: x_t at kept row 2 (the mosaic's second line from the top), third digit
    z = np.asarray(f.data[0].z)[::-1]  # row 0 at the top again
    assert z.dtype == np.uint8 and f.data[0].zmax == 255
    assert np.array_equal(z[30:58, 60:88], ch.xs[2][2]) and z[28:30].max() == 0  # black gutters
    assert np.array_equal(np.asarray(f.data[1].z)[::-1][:28, :28], ch.pred_x0[0][0])
    assert '"dtype":"u1"' in f.to_json().replace(" ", "")  # sent as bytes, not numbers


# --- bad inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda: L.rescaled_schedule(LIN, 0),
        lambda: L.one_step_schedule(LIN, 2, 0.0),
        lambda: L.one_step_schedule(LIN, 2.5, 0.5),
        lambda: L.step_for_level(10, 1.5),
        lambda: L.reverse_step(GMM, LIN, 2, 0.5, [float("nan"), 0.0]),
        lambda: L.reverse_step(GMM, LIN, 2, 0.5, [0.0, 0.0, 0.0]),
        lambda: L.posterior_view(LIN, [0, 0], [0, 0], 0),
        lambda: L.posterior_view(LIN, [0, 0], [0, 0], 1001),
        lambda: L.ddpm_chain(L.MixtureEpsModel(GMM, LIN), LIN, 0),
        lambda: L.mean_drift(LIN, np.zeros((1, 2)), np.zeros((1, 2)), 0),
        lambda: L.digit_chain(None, LIN, [0], sampler="euler"),
        lambda: L.digit_chain(None, LIN, [0], variance="sigma"),
        lambda: L.digit_chain(None, LIN, [0], steps=0),
    ],
)
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_q_t_cloud_has_the_noised_mixtures_moments():
    s = make_schedule("linear", 1000)
    x, a = L.q_t_cloud(GMM, s, 0.3, 40_000, seed=1)
    assert a == pytest.approx(float(s.alpha_bar(torch.tensor(300.0))))
    mean = math.sqrt(a) * GMM.mean()  # E[x_t] = sqrt(abar) E[x_0]
    cov = a * GMM.cov() + (1 - a) * torch.eye(2, dtype=torch.float64)  # Cov[x_t] = abar Cov[x_0] + (1 - abar) I
    assert np.allclose(x.mean(0), mean.numpy(), atol=0.02)
    assert np.allclose(np.cov(x.T), cov.numpy(), atol=0.03)
