"""Conditional generation lesson: the exact noisy classifier against Bayes' rule, guidance at scale 0
against the unguided sampler, classifier guidance at s = 1 against the exact conditional model,
fidelity/diversity against the scale, and (when the weights exist) the MNIST claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons import conditional as L
from tests.helpers import shipped_or_skip
from toy_models.gmm import AnalyticModel, default_gmm
from toy_models.schedules import make_schedule


@pytest.fixture(scope="module")
def setup():
    g = default_gmm()
    s = make_schedule("linear", 1000)
    return g, s, AnalyticModel(g, s), L.ExactNoisyClassifier(g, s)


def test_exact_classifier_is_bayes_rule(setup):
    """p(y | x_t) from the classifier equals the noised mixture's responsibilities; it sums to one."""
    g, s, _, clf = setup
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (0, 100, 600):
        p = torch.softmax(clf(x, torch.full((64,), float(t))), 1)
        r = g.responsibilities(x, float(s.alphas_cumprod[t]))
        torch.testing.assert_close(p, r, atol=1e-9, rtol=1e-7)


def test_classifier_gradient_is_score_difference(setup):
    """grad log p(y | x_t) = grad log q_t(x_t | y) - grad log q_t(x_t) (Bayes' rule, differentiated)."""
    g, s, model, clf = setup
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.full((32,), 300.0)
    y = torch.full((32,), 2, dtype=torch.long)
    from toy_models.guidance import classifier_log_prob_grad

    grad = classifier_log_prob_grad(clf, x, t, y)
    torch.testing.assert_close(grad, model.score(x, t, y) - model.score(x, t), atol=1e-8, rtol=1e-6)


def test_exact_classifier_guidance_at_one_is_the_conditional_model(setup):
    """Unconditional eps + exact classifier at s = 1 is exactly the class-conditional eps."""
    g, s, model, clf = setup
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.full((16,), 450.0)
    y = torch.full((16,), 1, dtype=torch.long)
    guided = L.cg_model(model, clf, 1.0, s)(x, t, y)
    torch.testing.assert_close(guided, model(x, t, y), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("kind", ["cfg", "cg"])
def test_scale_zero_equals_unguided_sampler(setup, kind):
    g, s, model, clf = setup
    wrapped = L.cfg_model(model, 0.0, g.num_components) if kind == "cfg" else L.cg_model(model, clf, 0.0, s)
    a = L.guided_trajectory(wrapped, s, 3, 64, seed=5, steps=20).x0
    b = L.guided_trajectory(model, s, None, 64, seed=5, steps=20).x0
    assert torch.equal(a, b)


def test_cfg_at_one_matches_the_exact_class(setup):
    """w = 1 samples the class: mean within 4 standard errors of the component mean."""
    g, s, model, clf = setup
    x = L.guided_trajectory(L.cfg_model(model, 1.0, 5), s, 0, 400, seed=0, steps=50, dtype=torch.float64).x0
    se = g.covs[0].diagonal().sqrt() / math.sqrt(400)
    assert ((x.mean(0) - g.means[0]).abs() < 4 * se).all()


@pytest.mark.slow
def test_cfg_sweep_trades_diversity_for_fidelity(setup):
    """100 DDIM steps: with few steps DDIM itself shrinks the cloud (25 steps: 0.78 of the class's spread)."""
    g, s, model, clf = setup
    sw = L.cfg_sweep_2d(model, s, g, clf, label=4, scales=[0.0, 1.0, 6.0], n=300, seed=0, steps=100, null_label=5)
    acc, div = sw["accuracy"], sw["diversity"]
    assert acc[0] < 0.5 < acc[1]  # w = 0 ignores the label (class 4 is a small component)
    assert acc[2] >= acc[1] - 0.02
    assert abs(div[1] - 1.0) < 0.2  # w = 1: the class's own spread
    assert div[2] < 0.8 * div[1]  # over-sharpening shrinks the cloud


def test_classifier_field_points_uphill(setup):
    """One small step along the arrows raises p(y | x_t)."""
    g, s, model, clf = setup
    f = L.classifier_field(clf, 200.0, 1, n_heat=11, n_arrows=7)
    assert f["prob"].shape == (11, 11) and np.all((f["prob"] >= 0) & (f["prob"] <= 1))
    x = torch.tensor(f["arrow_xy"])
    step = torch.tensor(f["arrow_grad"])
    step = 1e-3 * step / step.norm(dim=1, keepdim=True).clamp(min=1e-12)
    t = torch.full((len(x),), 200.0)
    lp0 = torch.log_softmax(clf(x, t), 1)[:, 1]
    lp1 = torch.log_softmax(clf(x + step, t), 1)[:, 1]
    moved = f["arrow_grad"].__abs__().sum(1) > 1e-6
    assert (lp1[moved] >= lp0[moved] - 1e-12).all()


def test_tile_and_diversity():
    imgs = np.stack([np.full((1, 28, 28), k / 10) for k in range(10)])
    tile = L.tile_digits(imgs, cols=4)
    assert tile.shape == (3 * 29 - 1, 4 * 29 - 1)
    assert tile[29, 29] == pytest.approx(0.5)  # digit 5 = row 1, col 1
    f = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    assert L.feature_diversity(f, np.array([0, 0, 1])) == pytest.approx(5.0)


def test_figures_have_no_nan(setup):
    from lessons.figures import assert_no_nan

    g, s, model, clf = setup
    f = L.classifier_field(clf, 999.0, 0, n_heat=11, n_arrows=5)
    assert_no_nan(L.fig_classifier_field(f, 0, 999))
    assert_no_nan(L.fig_samples_2d(np.random.randn(20, 2), "x", density=L.class_density(g, 0, 21)))
    assert_no_nan(
        L.fig_sweep(
            dict(scale=np.array([0, 1.0]), accuracy=np.array([0.1, 0.9]), diversity=np.array([1.0, 0.5])), current=1.0
        )
    )


# --- MNIST: runs when the shipped weights exist ------------------------------------------------------
@pytest.mark.slow
def test_mnist_cfg_raises_judge_accuracy():
    """On a fixed seed set, w = 3 beats w = 0 on the independent judge's accuracy."""
    ld = shipped_or_skip("mnist")
    from toy_models.metrics import JudgeError, load_judge

    try:
        judge = load_judge()
    except JudgeError as e:
        pytest.skip(str(e))
    sw = L.cfg_sweep_mnist(ld.model, ld.schedule, [0.0, 3.0], per_class=3, seed=0, steps=20, judge=judge)
    assert sw["accuracy"][1] > sw["accuracy"][0] + 0.2, sw


@pytest.mark.slow
def test_mnist_cfg_scale_zero_is_unconditional():
    ld = shipped_or_skip("mnist")
    labels = torch.arange(4)
    a = L.mnist_samples(L.cfg_model(ld.model, 0.0, 10), ld.schedule, labels, seed=1, steps=5)
    b = L.mnist_samples(L.cfg_model(ld.model, 0.0, 10), ld.schedule, torch.full((4,), 10), seed=1, steps=5)
    assert torch.equal(a, b)


def test_nearest_label_share_counts_the_nearest_data_points_class():
    data_x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    data_y = np.array([0, 0, 1, 1])
    x0 = np.array([[0.05, 0.01], [4.9, 5.2], [5.0, 4.9], [-0.2, 0.1]])
    r = L.nearest_label_share(x0, data_x, data_y, 1)
    assert r["share"] == 0.5 and r["shares"] == {0: 0.5, 1: 0.5}
    assert L.nearest_label_share(x0[:1], data_x, data_y, 1)["share"] == 0.0
    assert L.nearest_label_share(x0, data_x, data_y, None)["share"] is None


# --- the page's "Try this" prompts, with the page's own runs (views/conditional.py run_2d, sweep_2d) ---------------
N_2D, STEPS = 300, 40  # the page's cloud size and default DDIM steps


@pytest.fixture(scope="module")
def page_runs():
    """The exact source at the sidebar's default (T = 1000), class 0: run_2d's clouds at the prompts' scales."""
    from lessons.settings import FrameState, build_schedule

    g = default_gmm()
    s = build_schedule(FrameState())
    model, clf = AnalyticModel(g, s), L.ExactNoisyClassifier(g, s)
    out = {}
    for w in L.TRY_W:
        x0 = L.guided_trajectory(
            L.cfg_model(model, w, g.num_components), s, 0, N_2D, 0, STEPS, stride=max(1, STEPS // 25)
        ).x0.numpy()
        out[w] = (x0, L.fidelity_diversity_2d(x0, 0, g, clf))
    return g, s, model, clf, out


def test_try_this_w0_ignores_the_label(page_runs):
    """(1) w = 0: the share in class 0 is about the class's mixture weight (within 3 binomial standard errors)."""
    g, _, _, _, out = page_runs
    p = float(g.weights[0])
    assert abs(out[0.0][1]["accuracy"] - p) < 3 * math.sqrt(p * (1 - p) / N_2D)


def test_try_this_w1_lands_in_the_class_with_about_its_spread(page_runs):
    """(2) w = 1: nearly every sample in the class, spread a little under 1 at 40 steps, nearer 1 at 200."""
    g, s, model, clf, out = page_runs
    m = out[1.0][1]
    assert m["accuracy"] > 0.97 and 0.75 < m["diversity"] < 1.0
    x0 = L.guided_trajectory(L.cfg_model(model, 1.0, 5), s, 0, N_2D, 0, 200, stride=8).x0.numpy()
    assert abs(L.fidelity_diversity_2d(x0, 0, g, clf)["diversity"] - 1) < abs(m["diversity"] - 1)


def test_try_this_w8_shrinks_and_is_pushed_off_the_class_mode(page_runs):
    """(3) w = 8: the spread falls below half of w = 1's, the mean log q(x_0 | y) drops below w = 1's, and the
    cloud's centre moves away from the mixture's centre (the other classes), while the t = 0 target stays
    centred on the class."""
    g, _, _, _, out = page_runs
    (x1, m1), (x8, m8) = out[1.0], out[8.0]
    assert m8["diversity"] < 0.5 * m1["diversity"]
    assert m8["log_lik"] < m1["log_lik"] - 0.5
    centre = (g.weights[:, None] * g.means).sum(0).numpy()
    assert np.linalg.norm(x8.mean(0) - centre) > np.linalg.norm(x1.mean(0) - centre) + 0.2
    axis, d = L.tilted_density(g, 0, 8.0)
    X, Y = np.meshgrid(axis, axis)
    target_mean = np.array([(d * X).sum(), (d * Y).sum()]) / d.sum()
    assert np.linalg.norm(target_mean - g.means[0].numpy()) < 0.05


def test_try_this_arrows_shrink_from_t100_to_t900(page_runs):
    """(4) The classifier figure draws its arrows on one scale: every arrow at t = 900 is smaller than the median
    arrow at t = 100, for the exact classifier and (if shipped) the learned one."""
    g, s, _, clf, _ = page_runs
    clfs = [clf]
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        clfs.append(load_checkpoint("gmm-classifier").model)
    except CheckpointError:
        pass
    for c in clfs:
        sizes = {}
        for t in L.TRY_T:
            fig = L.fig_classifier_field(L.classifier_field(c, float(t), 0), 0, t)
            sizes[t] = np.asarray(fig.data[1].marker.size, dtype=float)
        assert sizes[900].max() < np.median(sizes[100])


def test_sweep_caption_claims(page_runs):
    """LOOK_SWEEP: the page's sweep (200 samples, 40 steps, seed 0): share >= 0.95 from w = 1 on, spread falling."""
    g, s, model, clf, _ = page_runs
    sw = L.cfg_sweep_2d(model, s, g, clf, 0, (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0), 200, 0, 40, 5)
    assert (sw["accuracy"][sw["scale"] >= 1] >= 0.95).all()
    assert (np.diff(sw["diversity"]) < 0.02).all()
