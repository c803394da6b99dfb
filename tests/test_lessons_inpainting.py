"""Inpainting: the replacement method keeps the known part exactly, reduces to plain DDIM with an empty
mask, approaches the exact conditional with resampling; the exact conditional of the mixture against a
brute-force slice of its density; masks; the fine-tuned path with a (random) InpaintUNet; and, when
the weights exist, the MNIST measurements."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import inpainting as L
from tests.helpers import shipped_or_skip
from toy_models.gmm import AnalyticModel, GaussianMixture, default_gmm
from toy_models.inpainting import coordinate_mask, gmm_condition_on, renoise, sample_replacement
from toy_models.samplers import sample_ddim
from toy_models.schedules import make_schedule


class ToyImageModel(torch.nn.Module):
    """eps = 0.1 * x_t: a cheap, deterministic stand-in for a network on (B, 1, 28, 28)."""

    parameterization = "eps"

    def forward(self, x_t, t, y=None):
        return 0.1 * x_t


@pytest.fixture(scope="module")
def s():
    return make_schedule("linear", 200)


def _digit():
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 1, 28, 28, generator=g) * 2 - 1


@pytest.mark.parametrize("preset", [p for p in L.MASK_PRESETS if p != "custom"])
def test_replacement_keeps_known_pixels_exactly(s, preset):
    x0, mask = _digit(), L.preset_mask(preset, seed=1)
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = sample_replacement(
        ToyImageModel(), s, x_T, steps=10, mask=mask, known=x0, resample=2, generator=torch.Generator().manual_seed(1)
    )
    m = mask.expand_as(out) > 0
    assert torch.equal(out[m], x0.expand_as(out)[m])
    assert not torch.equal(out[~m], x0.expand_as(out)[~m])


def test_full_and_empty_masks(s):
    x0 = _digit()
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    full = sample_replacement(ToyImageModel(), s, x_T, steps=5, mask=torch.ones(1, 1, 28, 28), known=x0)
    assert torch.equal(full, x0.expand_as(full))
    empty = sample_replacement(ToyImageModel(), s, x_T, steps=7, mask=torch.zeros(1, 1, 28, 28), known=x0, eta=0.0)
    plain = sample_ddim(ToyImageModel(), s, x_T, steps=7, eta=0.0)
    torch.testing.assert_close(empty, plain, rtol=0, atol=0)


def test_bad_inputs(s):
    x_T = torch.randn(2, 2)
    with pytest.raises(ValueError, match="0 .unknown. and 1"):
        sample_replacement(ToyImageModel(), s, x_T, mask=torch.tensor([0.5, 1.0]), known=torch.zeros(2))
    with pytest.raises(ValueError, match="resample"):
        sample_replacement(ToyImageModel(), s, x_T, mask=coordinate_mask(0), known=torch.zeros(2), resample=0)
    with pytest.raises(ValueError, match="unknown mask"):
        L.preset_mask("triangle")
    with pytest.raises(ValueError, match="dim"):
        gmm_condition_on(default_gmm(), 2, 0.0)


def test_renoise_moments(s):
    """q(x_t | x_{t'}) has mean sqrt(abar_t / abar_t') x and variance 1 - abar_t / abar_t' (Monte Carlo)."""
    x = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    r = renoise(s, x, 50, 120, torch.Generator().manual_seed(0))
    ratio = float(s.alphas_cumprod[120] / s.alphas_cumprod[50])
    assert abs(r.mean().item() - 2 * math.sqrt(ratio)) < 5 * math.sqrt((1 - ratio) / 200_000)
    assert abs(r.var().item() - (1 - ratio)) < 0.01


def test_exact_conditional_matches_a_slice_of_the_density():
    g = default_gmm()
    a = 0.3
    cond = gmm_condition_on(g, 0, a)
    u = torch.linspace(-6, 6, 4001, dtype=torch.float64)
    joint = g.log_prob(torch.stack([torch.full_like(u, a), u], 1)).exp()
    brute = joint / torch.trapezoid(joint, u)
    torch.testing.assert_close(cond.log_prob(u[:, None]).exp(), brute, atol=1e-6, rtol=1e-4)
    cond_y = gmm_condition_on(g, 1, -0.4)  # and on the other coordinate
    joint = g.log_prob(torch.stack([u, torch.full_like(u, -0.4)], 1)).exp()
    torch.testing.assert_close(
        cond_y.log_prob(u[:, None]).exp(), joint / torch.trapezoid(joint, u), atol=1e-6, rtol=1e-4
    )


@pytest.mark.slow
def test_resampling_moves_replacement_toward_the_exact_conditional():
    """Correlated Gaussian, x1 = 1.5 known: the exact x2 | x1 has mean 0.9 * 1.5; replacement without
    resampling undershoots (measured 0.93), with r = 10 it comes close (measured 1.31)."""
    g = GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 0.9], [0.9, 1.0]]]))
    s = make_schedule("linear", 1000)
    m = AnalyticModel(g, s)
    r1 = L.inpaint_2d(m, s, 1.5, 300, 0, 25, 1, stride=25).x0
    r10 = L.inpaint_2d(m, s, 1.5, 300, 0, 25, 10, stride=25).x0
    assert (r1[:, 0] == 1.5).all() and (r10[:, 0] == 1.5).all()
    err1, err10 = abs(r1[:, 1].mean() - 1.35), abs(r10[:, 1].mean() - 1.35)
    assert err10 < 0.5 * err1, (err1, err10)
    w1 = L.wasserstein_to_exact(r1[:, 1].numpy(), g, 1.5)
    w10 = L.wasserstein_to_exact(r10[:, 1].numpy(), g, 1.5)
    assert w10 < w1


def test_wasserstein_floor():
    g = default_gmm()
    ex, _ = gmm_condition_on(g, 0, 0.5).sample(500, generator=torch.Generator().manual_seed(1))
    assert L.wasserstein_to_exact(ex[:, 0].numpy(), g, 0.5) < 0.1
    assert L.wasserstein_to_exact(ex[:, 0].numpy() + 1.0, g, 0.5) == pytest.approx(1.0, abs=0.1)


def test_masks_and_metrics():
    assert L.preset_mask("left half").sum() == 28 * 14
    assert L.preset_mask("centre box").sum() == 784 - 144
    frac = L.preset_mask("scattered pixels", seed=0).mean().item()
    assert 0.05 < frac < 0.15
    b = np.zeros((L.GRID, L.GRID))
    b[0, 1] = 1
    m = L.preset_mask("custom", blocks=b)
    assert m.sum() == 16 and m[0, 0, 0:4, 4:8].eq(1).all()
    x0 = _digit()
    assert L.known_region_error(x0.expand(3, -1, -1, -1), x0, m) == 0.0
    assert L.known_region_error(x0 + 0.5, x0, m) == pytest.approx(0.5)
    flat = torch.zeros(1, 1, 28, 28)
    step = torch.zeros(1, 1, 28, 28)
    step[..., 14:] = 1.0
    assert L.seam_error(flat, L.preset_mask("left half")) == 0.0
    assert L.seam_error(step, L.preset_mask("left half")) > 0.4


def test_finetuned_path_with_a_random_inpaint_net(s):
    from toy_models.networks import InpaintUNet, UNetConfig

    net = InpaintUNet(UNetConfig(in_channels=3, channels=[8, 8], attention=False, num_classes=10, groups=4)).eval()
    tr = L.inpaint_finetuned(net, s, _digit(), L.preset_mask("top half"), 2, 0, steps=3)
    assert tr.xs.shape == (4, 2, 1, 28, 28) and torch.isfinite(tr.x0).all()
    assert tr.x0.abs().max() <= 1.0 + 1e-6  # the last DDIM step returns the clipped x0


def test_fig_2d_no_nan():
    from lessons.figures import assert_no_nan

    g = default_gmm()
    grid, dens = L.exact_conditional_1d(g, 0.5)
    assert_no_nan(L.fig_2d(np.random.randn(50, 2), 0.5, grid, dens, np.random.randn(50)))


# --- MNIST with the shipped weights ---------------------------------------------------------------
@pytest.mark.slow
def test_mnist_replacement_and_finetuned_measured():
    from toy_models.data import load_mnist, mnist_digit

    ld, li = shipped_or_skip("mnist"), shipped_or_skip("mnist-inpaint")
    x0 = mnist_digit(load_mnist(), 3, 0)
    mask = L.preset_mask("top half")
    rep = L.inpaint_replacement(ld.model, ld.schedule, x0, mask, 4, 0, steps=20).x0
    fin = L.inpaint_finetuned(li.model, li.schedule, x0, mask, 4, 0, steps=20).x0
    assert L.known_region_error(rep, x0, mask) == 0.0  # replacement: exact by construction
    assert L.known_region_error(fin, x0, mask) < 0.3  # the fine-tuned model: close, learned


# --- what the text says the code does, and the "Try this" prompts --------------------------------------------
def test_the_step_shown_is_the_step_taken(s):
    """EQ_REPLACE: the replacement method takes DDIM steps with eta = 1 on the strided grid (its default, which
    the lesson's runs keep), and one recorded step equals ddim_step with eta = 1 then the known part re-noised."""
    import inspect

    from toy_models.samplers import ddim_step, ddim_timesteps, model_predictions

    assert inspect.signature(sample_replacement).parameters["eta"].default == 1.0
    for f in (L.inpaint_2d, L.inpaint_replacement):
        assert "eta" not in inspect.getsource(f)
    g = default_gmm()
    m = AnalyticModel(g, s)
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    steps = []
    sample_replacement(
        m,
        s,
        x_T,
        steps=10,
        mask=coordinate_mask(0).double(),
        known=torch.tensor([0.5, 0.0]),
        generator=torch.Generator().manual_seed(1),
        callback=steps.append,
    )
    st = steps[3]
    t, t_next = int(st.t), int(st.t_next)
    assert [t, t_next] == ddim_timesteps(s.T, 10, "quadratic")[3:5]  # the grid sample_ddim uses by default
    eps, x0 = model_predictions(m, s, st.x_t, torch.full((50,), float(t), dtype=torch.float64))
    zero, sigma = ddim_step(s, st.x_t, eps, x0, t, t_next, 1.0, torch.zeros_like(st.x_t))
    assert sigma > 0  # a stochastic step
    a_n = float(s.alphas_cumprod[t_next])
    # unknown coordinate: mean ddim_step(noise = 0), residual of size sigma (one draw each; loose check on 50)
    r = (st.x_next[:, 1] - zero[:, 1]) / sigma
    assert abs(float(r.mean())) < 0.6 and 0.6 < float(r.std()) < 1.4
    # known coordinate: the known value re-noised to t_next
    k = (st.x_next[:, 0] - math.sqrt(a_n) * 0.5) / math.sqrt(1 - a_n)
    assert abs(float(k.mean())) < 0.6 and 0.6 < float(k.std()) < 1.4


def test_resampling_costs_r_evaluations_a_step_and_the_finetuned_model_one(s):
    """RESAMPLE_TEXT / FINETUNED_TEXT: r evaluations per step (the last step, to t = 0, once) against 1 per step."""
    from toy_models.samplers import SamplerInfo

    x_T = torch.zeros(2, 1, 28, 28)
    for r in (1, 3):
        info = SamplerInfo()
        sample_replacement(
            ToyImageModel(),
            s,
            x_T,
            steps=10,
            mask=L.preset_mask("left half"),
            known=_digit(),
            resample=r,
            generator=torch.Generator().manual_seed(0),
            info=info,
        )
        assert info.nfe == 9 * r + 1
    info = SamplerInfo()
    sample_ddim(ToyImageModel(), s, x_T, steps=10, info=info)
    assert info.nfe == 10


def test_try_this_2d_resampling_helps_but_stays_above_the_floor():
    """Prompt (1) with the page's run_2d at the default sidebar (T = 1000), x1 = 0.5, 400 points, 50 steps, seed 0:
    W1 at r = 1 is many times the floor; at r = 10 it is smaller, yet still well above the floor."""
    from lessons.settings import FrameState, build_schedule

    g = default_gmm()
    sch = build_schedule(FrameState())
    ex, _ = gmm_condition_on(g, 0, 0.5).sample(400, generator=torch.Generator().manual_seed(0))
    floor = L.wasserstein_to_exact(ex[:, 0].numpy(), g, 0.5, seed=7)
    w1 = {
        r: L.wasserstein_to_exact(
            L.inpaint_2d(AnalyticModel(g, sch), sch, 0.5, 400, 0, 50, r).x0[:, 1].numpy(), g, 0.5, seed=7
        )
        for r in L.TRY_R
    }
    assert w1[1] > 10 * floor
    assert w1[10] < 0.8 * w1[1]
    assert w1[10] > 5 * floor


def test_try_this_scattered_pixels_hide_about_90_percent():
    """Prompt (2): the 'scattered pixels' mask at the default seed hides about 90% of the 784 pixels."""
    assert L.SCATTER_KEEP == pytest.approx(0.1)
    hidden = 1 - float(L.preset_mask("scattered pixels", 0).mean())
    assert abs(hidden - 0.9) < 0.03
