"""Samplers against exact answers: Gaussian data (closed-form eps) and the analytic Gaussian mixture."""

import math

import pytest
import torch

from toy_models.samplers import (
    SAMPLERS,
    SamplerInfo,
    ddim_timesteps,
    get_sampler,
    langevin_levels,
    run_with_trajectory,
    sample_ddim,
    sample_ddpm,
    sample_langevin,
    sample_ode,
)
from toy_models.schedules import make_schedule

S = make_schedule("linear", 1000)
S100 = make_schedule("linear", 100, beta_start=1e-3, beta_end=0.2)  # short chains where accuracy is not tested


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # thousands of tiny ops: on a shared 2-core machine two threads spin against each other (40x slower)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class GaussianEps:
    """Exact eps for data N(m, diag(v)): q_t = N(sqrt(abar) m, abar v + 1 - abar), eps = -sqrt(1 - abar) score."""

    parameterization = "eps"

    def __init__(self, m, v, s=S):
        self.m, self.v, self.s = torch.as_tensor(m, dtype=torch.float64), torch.as_tensor(v, dtype=torch.float64), s

    def abar(self, t, x):
        return self.s.alpha_bar(t.to(torch.float64)).reshape(-1, *([1] * (x.ndim - 1)))

    def __call__(self, x, t, y=None):
        a = self.abar(t, x)
        score = -(x - a.sqrt() * self.m) / (a * self.v + 1 - a)
        return (-(1 - a).sqrt() * score).to(x.dtype)


class GaussianX0(GaussianEps):
    """The same exact model, predicting x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)."""

    parameterization = "x0"

    def __call__(self, x, t, y=None):
        a = self.abar(t, x)
        return (x - (1 - a).sqrt() * super().__call__(x, t, y)) / a.sqrt()


M, V = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.25, 0.8], dtype=torch.float64)
GAUSS = GaussianEps(M, V)


def noise(n, seed=0, shape=(2,)):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def assert_moments(x, mean, var, z=4.5):
    """Sample mean and variance per coordinate within z standard errors of the truth."""
    n = x.shape[0]
    se_m = (var / n).sqrt()
    se_v = var * math.sqrt(2.0 / (n - 1))
    assert ((x.mean(0) - mean).abs() < z * se_m).all(), (x.mean(0), mean)
    assert ((x.var(0) - var).abs() < z * se_v).all(), (x.var(0), var)


# --- DDPM and DDIM ---------------------------------------------------------------------------
def test_ddim_eta1_all_steps_is_ddpm_beta_tilde_pathwise():
    xT = noise(200)
    model = GaussianEps(M, V, S100)
    a = sample_ddpm(model, S100, xT, variance="beta_tilde", generator=gen(3))
    b = sample_ddim(model, S100, xT, eta=1.0, generator=gen(3))
    assert torch.allclose(a, b, atol=1e-10, rtol=0)


@pytest.mark.slow
def test_ddim_eta1_and_ddpm_match_each_other_and_the_data():
    n = 4000
    a = sample_ddpm(GAUSS, S, noise(n, 1), variance="beta_tilde", generator=gen(11))
    b = sample_ddim(GAUSS, S, noise(n, 2), eta=1.0, generator=gen(12))
    for x in (a, b):
        assert_moments(x, M, V)
    # two-sample: the difference of means is within Monte Carlo error of zero
    se = (a.var(0) / n + b.var(0) / n).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() < 4.5 * se).all()


@pytest.mark.slow
def test_ddpm_beta_variance_also_samples_the_data():
    x = sample_ddpm(GAUSS, S, noise(4000, 4), variance="beta", generator=gen(5))
    assert_moments(x, M, V)


def test_ddim_eta0_is_deterministic_and_few_steps_match_the_data():
    xT = noise(4000, 7)
    a = sample_ddim(GAUSS, S, xT, steps=50, eta=0.0, generator=gen(1))
    b = sample_ddim(GAUSS, S, xT, steps=50, eta=0.0, generator=gen(2))
    assert torch.equal(a, b)
    assert_moments(a, M, V, z=6)


def test_x0_parameterization_gives_the_same_samples():
    xT = noise(200, 8)
    a = sample_ddim(GAUSS, S, xT, steps=20)
    b = sample_ddim(GaussianX0(M, V), S, xT, steps=20)
    assert torch.allclose(a, b, atol=1e-9)


def test_ddim_timesteps_strided_and_complete():
    assert ddim_timesteps(10, 10) == list(range(10, -1, -1))
    ts = ddim_timesteps(1000, 7)
    assert ts[0] == 1000 and ts[-1] == 0 and len(ts) == 8 and all(a > b for a, b in zip(ts, ts[1:]))
    lv = langevin_levels(1000, 50)
    assert lv[0] == 1000 and lv[-1] == 1 and len(set(lv)) == 50


def test_ddim_quadratic_grid():
    # Song, Meng & Ermon (2021) appendix D.2: t_k = round(T ((K - k) / K)^2), pushed apart where rounding ties
    for T, K in ((1000, 50), (1000, 7), (1000, 999), (100, 60), (3, 2)):
        ts = ddim_timesteps(T, K, "quadratic")
        assert ts[0] == T and ts[-1] == 0 and len(ts) == K + 1 and all(a > b for a, b in zip(ts, ts[1:]))
    assert ddim_timesteps(10, 10, "quadratic") == list(range(10, -1, -1))  # steps = T: every time
    assert ddim_timesteps(1000, 1000, "quadratic") == list(range(1000, -1, -1))
    ts = ddim_timesteps(1000, 50, "quadratic")
    assert ts[:4] == [1000, 960, 922, 884] and ts[-6:] == [10, 6, 4, 2, 1, 0]  # 1000 (49/50)^2 = 960.4, ...
    assert ts[:-2] == [round(1000 * ((50 - k) / 50) ** 2) for k in range(49)]  # only t = 0.4 -> 1 is pushed up
    gaps = [a - b for a, b in zip(ts, ts[1:])]
    assert gaps[0] == 40 and max(gaps[-5:]) <= 4  # 10x finer near t = 0 than near T
    with pytest.raises(ValueError, match="quadratic"):
        ddim_timesteps(1000, 50, "cubic")
    with pytest.raises(ValueError, match="grid"):
        sample_ddim(GAUSS, S, noise(4), steps=5, grid="log")


def test_ddim_quadratic_grid_converges_to_the_exact_flow_on_the_mixture():
    # with the exact mixture model, DDIM (eta 0) is Euler on the probability-flow ODE: as steps grow both grids
    # converge to one map of x_T, the exact flow; the 1,000-step chains on either grid agree closely
    pytest.importorskip("toy_models.gmm")
    from toy_models.gmm import AnalyticModel, default_gmm

    model = AnalyticModel(default_gmm(), S)
    xT = noise(200, 30)
    ref = sample_ddim(model, S, xT, steps=1000, grid="quadratic")
    assert torch.allclose(ref, sample_ddim(model, S, xT, steps=1000, grid="uniform"))
    err = {
        g: [(sample_ddim(model, S, xT, steps=k, grid=g) - ref).norm(dim=1).mean().item() for k in (10, 50, 250)]
        for g in ("uniform", "quadratic")
    }
    q, u = err["quadratic"], err["uniform"]
    assert q[1] < 0.3 * q[0] and q[2] < 0.3 * q[1], err  # first order: 5x the steps, ~1/5 the error
    assert all(a < b for a, b in zip(q, u)), err  # and closer than the uniform grid at every count


def test_clip_x0_recomputes_eps_from_the_clipped_x0():
    steps = []
    model = GaussianEps(torch.tensor([3.0, -3.0]), torch.tensor([0.5, 0.5]))
    xT = noise(300, 9, shape=(1, 2))  # an image-like (B, 1, 2) shape
    model.m, model.v = model.m.reshape(1, 2), model.v.reshape(1, 2)
    x = sample_ddim(model, S, xT, steps=10, clip_x0=(-1, 1), callback=steps.append)
    assert x.shape == xT.shape and x.min() >= -1 and x.max() <= 1
    for st in steps:
        assert st.pred_x0.min() >= -1 and st.pred_x0.max() <= 1
        a = float(S.alphas_cumprod[int(st.t)])
        # x_t = sqrt(abar) x0 + sqrt(1 - abar) eps holds for the clipped pair
        assert torch.allclose(st.x_t, math.sqrt(a) * st.pred_x0 + math.sqrt(1 - a) * st.pred_eps, atol=1e-9)
        an = float(S.alphas_cumprod[int(st.t_next)])
        assert torch.allclose(st.x_next, math.sqrt(an) * st.pred_x0 + math.sqrt(1 - an) * st.pred_eps, atol=1e-9)


# --- the probability-flow ODE ----------------------------------------------------------------
def test_ode_euler_equals_ddim_eta0_on_the_same_grid():
    pytest.importorskip("toy_models.gmm")
    from toy_models.gmm import AnalyticModel, default_gmm

    model = AnalyticModel(default_gmm(), S)
    xT = noise(300, 10)
    for steps in (13, 100):
        a = sample_ode(model, S, xT, steps=steps, method="euler")
        b = sample_ddim(model, S, xT, steps=steps, eta=0.0, grid="uniform")  # the ODE's grid
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def _gaussian_flow(xT, t):
    """The exact probability-flow map for Gaussian data: the standardised x_t is constant along the flow."""
    aT, a = S.alphas_cumprod[-1], S.alpha_bar(torch.tensor(float(t)))
    z = (xT - aT.sqrt() * M) / (aT * V + 1 - aT).sqrt()
    return a.sqrt() * M + (a * V + 1 - a).sqrt() * z


def test_dopri5_solves_the_flow_and_heun_beats_euler():
    xT = noise(200, 12)
    info = SamplerInfo()
    ref = sample_ode(GAUSS, S, xT, method="dopri5", rtol=1e-7, atol=1e-7, denoise_final=False, info=info)
    assert 50 < info.nfe < 1000
    assert torch.allclose(ref, _gaussian_flow(xT, 1e-3), atol=1e-4, rtol=0)  # measured 2e-5
    exact = _gaussian_flow(xT, 0.0)
    err_e = (sample_ode(GAUSS, S, xT, steps=100, method="euler") - exact).abs().max()
    err_h = (sample_ode(GAUSS, S, xT, steps=100, method="heun") - exact).abs().max()
    assert err_h < 1e-2 and err_h < err_e / 5, (err_h, err_e)


def test_dopri5_with_reported_steps_and_callback():
    seen = []
    info = SamplerInfo()
    x = sample_ode(GAUSS, S, noise(50, 13), steps=4, method="dopri5", callback=seen.append, info=info)
    assert [st.i for st in seen] == [0, 1, 2, 3, 4]
    assert seen[0].t == 1000 and seen[-2].t_next == pytest.approx(1e-3) and seen[-1].t_next == 0
    assert torch.equal(seen[-1].x_next, x)
    for a, b in zip(seen, seen[1:]):
        assert torch.equal(a.x_next, b.x_t)


# --- the exact mixture: component weights ------------------------------------------------------
def _component_freqs(gmm, x):
    r = gmm.responsibilities(x).argmax(1)
    return torch.bincount(r, minlength=gmm.num_components).double() / x.shape[0]


@pytest.mark.parametrize("name,kw", [("ddim", dict(steps=100, eta=0.0)), ("ode", dict(steps=50, method="heun"))])
def test_gmm_samples_have_the_component_weights(name, kw):
    pytest.importorskip("toy_models.gmm")
    from toy_models.gmm import AnalyticModel, default_gmm

    g = default_gmm()
    n = 4000
    x = SAMPLERS[name](AnalyticModel(g, S), S, noise(n, 14), generator=gen(15), **kw)
    se = (g.weights * (1 - g.weights) / n).sqrt()
    assert ((_component_freqs(g, x) - g.weights).abs() < 4.5 * se + 0.005).all(), _component_freqs(g, x)


@pytest.mark.slow
def test_gmm_ddpm_samples_have_the_component_weights():
    pytest.importorskip("toy_models.gmm")
    from toy_models.gmm import AnalyticModel, default_gmm

    g = default_gmm()
    n = 2000
    x = sample_ddpm(AnalyticModel(g, S), S, noise(n, 16), generator=gen(17))
    se = (g.weights * (1 - g.weights) / n).sqrt()
    assert ((_component_freqs(g, x) - g.weights).abs() < 4.5 * se + 0.005).all(), _component_freqs(g, x)


@pytest.mark.slow
def test_langevin_with_the_exact_score_recovers_the_weights():
    pytest.importorskip("toy_models.gmm")
    from toy_models.gmm import AnalyticModel, default_gmm

    g = default_gmm()
    n = 2000
    x = sample_langevin(AnalyticModel(g, S), S, noise(n, 18), steps=100, n_steps_each=10, generator=gen(19))
    se = (g.weights * (1 - g.weights) / n).sqrt()
    assert ((_component_freqs(g, x) - g.weights).abs() < 4.5 * se + 0.01).all(), _component_freqs(g, x)
    # and lands on the data, not between the modes: mean log-density near that of the data (-1.40)
    assert g.log_prob(x).mean() > -1.7


def test_langevin_sigma_rule_on_a_gaussian():
    # measured: mean (0.95, -0.45) vs (1, -0.5), std ratio (1.07, 1.00): the sigma rule lags a little
    x = sample_langevin(GAUSS, S, noise(1000, 20), steps=100, n_steps_each=10, step_rule="sigma", generator=gen(21))
    assert ((x.mean(0) - M).abs() < 0.1).all() and ((x.std(0) / V.sqrt() - 1).abs() < 0.15).all()


# --- callbacks, trajectories, seeds, errors -------------------------------------------------
@pytest.mark.parametrize(
    "name,kw,n_steps",
    [
        ("ddpm", {}, 100),
        ("ddim", dict(steps=25), 25),
        ("ode", dict(steps=10, method="heun"), 10),
        ("langevin", dict(steps=5, n_steps_each=3), 16),
    ],
)
def test_callbacks_see_every_step_and_trajectory_ends_at_the_output(name, kw, n_steps):
    xT = noise(64, 22)
    seen = []
    info = SamplerInfo()
    model = GaussianEps(M, V, S100)
    out = SAMPLERS[name](model, S100, xT, generator=gen(23), callback=seen.append, info=info, **kw)
    assert [st.i for st in seen] == list(range(n_steps))
    assert torch.equal(seen[0].x_t, xT) and torch.equal(seen[-1].x_next, out)
    for a, b in zip(seen, seen[1:]):
        assert torch.equal(a.x_next, b.x_t) and a.t >= b.t
    assert info.nfe >= n_steps
    traj = run_with_trajectory(name, model, S100, xT, stride=3, generator=gen(23), **kw)
    assert torch.equal(traj.xs[-1], out) and torch.equal(traj.xs[0], xT)
    assert traj.xs.shape == (len(traj.ts), 64, 2) and traj.pred_x0.shape == (len(traj.ts) - 1, 64, 2)
    assert len(traj.ts) == len(range(0, n_steps, 3)) + 1 and traj.ts[-1] == seen[-1].t_next


def test_trajectory_store_dtype_and_user_callback():
    count = []
    traj = run_with_trajectory(
        sample_ddim, GAUSS, S, noise(8, 24), steps=10, store_dtype=torch.float16, callback=lambda st: count.append(st.i)
    )
    assert traj.xs.dtype == torch.float16 and count == list(range(10))
    assert traj.ts.tolist() == [float(t) for t in ddim_timesteps(1000, 10, "quadratic")]  # sample_ddim's default


@pytest.mark.parametrize("name", ["ddpm", "ddim", "langevin"])
def test_same_seed_same_numbers(name):
    kw = dict(eta=0.5, steps=30) if name == "ddim" else (dict(steps=20, n_steps_each=2) if name == "langevin" else {})
    xT = noise(32, 25)
    model = GaussianEps(M, V, S100)
    a = SAMPLERS[name](model, S100, xT, generator=gen(1), **kw)
    b = SAMPLERS[name](model, S100, xT, generator=gen(1), **kw)
    c = SAMPLERS[name](model, S100, xT, generator=gen(2), **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_bad_names_and_options_fail_clearly():
    xT = noise(4)
    with pytest.raises(ValueError, match="ddpm, ddim, ode, langevin"):
        get_sampler("euler")
    with pytest.raises(TypeError, match="etta"):  # a misspelt option: Python's own error names it
        sample_ddim(GAUSS, S, xT, etta=0.0)
    with pytest.raises(ValueError, match="euler"):
        sample_ode(GAUSS, S, xT, method="rk45")
    with pytest.raises(ValueError, match="beta_tilde"):
        sample_ddpm(GAUSS, S, xT, variance="fixed")
    with pytest.raises(ValueError, match="sample_ddim"):
        sample_ddpm(GAUSS, S, xT, steps=50)
    with pytest.raises(TypeError, match="eta"):  # an option of another sampler
        sample_ddpm(GAUSS, S, xT, eta=0.5)
    for bad in (0, 1001, 2.5):
        with pytest.raises(ValueError, match="steps"):
            sample_ddim(GAUSS, S, xT, steps=bad)
    with pytest.raises(ValueError, match="step_rule"):
        sample_langevin(GAUSS, S, xT, step_rule="big")
    with pytest.raises(ValueError, match="clip_x0"):
        sample_ddim(GAUSS, S, xT, clip_x0=(1, -1))
    with pytest.raises(ValueError, match="stride"):
        run_with_trajectory("ddim", GAUSS, S, xT, stride=0)
    with pytest.raises(ValueError, match=r"y must be"):
        sample_ddim(GAUSS, S, xT, y=torch.zeros(3, dtype=torch.long))


def test_shape_mismatch_fails_clearly():
    def wrong(x, t, y=None):
        return x[:, :1]

    with pytest.raises(ValueError, match="shape"):
        sample_ddim(wrong, S, noise(4), steps=3)
