"""Metrics against closed forms and independent computations."""

import math
import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from toy_models import metrics
from toy_models.metrics import (
    frechet_distance,
    frechet_distance_gaussians,
    noise_floor,
    random_directions,
    sliced_wasserstein,
)


# --- sliced Wasserstein -------------------------------------------------------------------------
def test_sw_of_a_set_with_itself_is_zero():
    a = np.random.default_rng(0).standard_normal((500, 2))
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, a[::-1].copy()) == 0.0  # order does not matter


@pytest.mark.parametrize("c", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("p", [1, 2])
def test_sw_1d_shift_is_the_shift(c, p):
    """In 1D every direction is +-1, so a shift by c moves each quantile by c: W_p = |c|."""
    a = np.random.default_rng(1).standard_normal((400, 1))
    assert sliced_wasserstein(a, a + c, p=p) == pytest.approx(c, rel=1e-12)


def test_sw_2d_shift_closed_form():
    """Shift by c in 2D: W_2 along theta is |c . theta|, so SW_2 = sqrt(mean (c . theta)^2) -> |c|/sqrt 2."""
    a = np.random.default_rng(2).standard_normal((300, 2))
    c = np.array([0.6, -0.8])
    theta = random_directions(512, 2, seed=0)
    exact = math.sqrt(np.mean((theta @ c) ** 2))
    got = sliced_wasserstein(a, a + c, n_projections=512, seed=0)
    assert got == pytest.approx(exact, rel=1e-10)
    assert got == pytest.approx(1 / math.sqrt(2), rel=0.05)
    # SW grows with the shift: linearly for a pure translation
    assert sliced_wasserstein(a, a + 2 * c) == pytest.approx(2 * got, rel=1e-10)


def test_sw_gaussians_1d_closed_form():
    """W_2(N(0, 1), N(mu, s^2)) = sqrt(mu^2 + (1 - s)^2) (Gaussian quantiles are affine)."""
    rng = np.random.default_rng(3)
    mu, s = 0.7, 1.5
    a = rng.standard_normal((40_000, 1))
    b = mu + s * rng.standard_normal((40_000, 1))
    assert sliced_wasserstein(a, b, n_projections=2) == pytest.approx(math.hypot(mu, 1 - s), rel=0.03)


def test_sw_unequal_sizes_matches_scipy_w1():
    """Different set sizes go through the merged-quantile path; scipy's 1D W_1 is independent."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((137, 1)), 0.3 + 2 * rng.standard_normal((250, 1))
    assert sliced_wasserstein(a, b, p=1) == pytest.approx(stats.wasserstein_distance(a[:, 0], b[:, 0]), rel=1e-10)
    # W_2 from the same path agrees with the brute-force quantile integral on a fine grid
    q = (np.arange(200_000) + 0.5) / 200_000
    brute = np.sqrt(
        np.mean((np.quantile(a[:, 0], q, method="inverted_cdf") - np.quantile(b[:, 0], q, method="inverted_cdf")) ** 2)
    )
    assert sliced_wasserstein(a, b) == pytest.approx(brute, rel=1e-3)


def test_sw_accepts_torch_and_rejects_bad_shapes():
    a = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(a, a + 1.0) == pytest.approx(sliced_wasserstein(a.numpy(), a.numpy() + 1.0))
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="p must be"):
        sliced_wasserstein(np.zeros((5, 2)), np.zeros((5, 2)), p=3)


def test_noise_floor_shrinks_with_n_and_separates_a_shift():
    def sample(n, seed):
        return np.random.default_rng(seed).standard_normal((n, 2))

    f_small, f_big = noise_floor(sample, 200, n_projections=128), noise_floor(sample, 3200, n_projections=128)
    assert 0 < f_big < 0.5 * f_small  # empirical W_2 error falls like ~1/sqrt(n)
    shifted = sample(3200, 99) + np.array([0.3, 0.0])
    assert sliced_wasserstein(shifted, sample(3200, 1), n_projections=128) > 5 * f_big
    with pytest.raises(ValueError, match="distinct"):
        noise_floor(sample, 10, seeds=(1, 1))


# --- Frechet distance ------------------------------------------------------------------------------
def test_fd_closed_form_commuting_covariances():
    """Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2."""
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    exact = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance_gaussians(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(exact, rel=1e-10)
    assert frechet_distance_gaussians(m1, np.diag(s1), m1, np.diag(s1)) == pytest.approx(0.0, abs=1e-10)


def test_fd_general_covariances_match_symmetric_formula():
    """tr sqrtm(S1 S2) = tr (S1^1/2 S2 S1^1/2)^1/2: an independent route through eigh."""
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    s1, s2 = A @ A.T + 0.1 * np.eye(4), B @ B.T + 0.1 * np.eye(4)
    m1, m2 = rng.standard_normal(4), rng.standard_normal(4)

    def psd_sqrt(S):
        w, V = np.linalg.eigh(S)
        return (V * np.sqrt(np.clip(w, 0, None))) @ V.T

    r1 = psd_sqrt(s1)
    exact = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(r1 @ s2 @ r1))
    assert frechet_distance_gaussians(m1, s1, m2, s2) == pytest.approx(exact, rel=1e-8)


def test_fd_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(6)
    m1, m2 = np.zeros(3), np.array([1.0, 0.0, 0.5])
    L1, L2 = np.diag([1.0, 0.5, 2.0]), np.array([[1.0, 0, 0], [0.5, 1.0, 0], [0, 0.3, 0.7]])
    a = m1 + rng.standard_normal((50_000, 3)) @ L1.T
    b = m2 + rng.standard_normal((50_000, 3)) @ L2.T
    exact = frechet_distance_gaussians(m1, L1 @ L1.T, m2, L2 @ L2.T)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fd_singular_covariances_stay_finite_and_real():
    """Fewer samples than features: singular covariances; sqrtm's complex rounding is handled."""
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((10, 32)), rng.standard_normal((10, 32)) + 0.5
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d > 32 * 0.25 * 0.5  # the mean shift alone contributes 32 * 0.25
    assert isinstance(d, float)


# --- the MNIST judge -------------------------------------------------------------------------------
JUDGE = metrics.WEIGHTS_DIR / "mnist-judge.safetensors"


def _mnist():
    data = pytest.importorskip("toy_models.data", reason="toy_models.data (load_mnist) has not landed yet")
    return data.load_mnist()


@pytest.fixture(scope="module")
def judge():
    if not JUDGE.exists():
        pytest.skip("weights/mnist-judge.safetensors not built yet: python -m toy_models train-judge")
    return metrics.load_judge()


def test_judge_scores_held_out_real_digits(judge):
    d = _mnist()
    acc = metrics.judge_accuracy(d.x_test, d.y_test, judge=judge)
    assert acc >= 0.95
    side = metrics.json.loads(JUDGE.with_suffix(".json").read_text())
    assert side["metrics"]["test_accuracy"] == pytest.approx(acc, abs=1e-9)  # the sidecar tells the truth
    # wrong labels are recognised as wrong
    assert metrics.judge_accuracy(d.x_test, (torch.as_tensor(d.y_test) + 1) % 10, judge=judge) < 0.05


def test_judge_features_and_the_real_floor(judge):
    d = _mnist()
    x = torch.as_tensor(d.x_test)
    f = metrics.judge_features(x[:300], judge=judge)
    assert f.shape == (300, judge.config.features) and f.dtype == np.float64
    # (N, 28, 28) and (N, 1, 28, 28) give the same features
    np.testing.assert_allclose(metrics.judge_features(x[:20, 0], judge=judge), f[:20], atol=1e-6)
    floor = metrics.real_floor_fd(x, 200, judge=judge)
    noisy = (x[:200] + 0.8 * torch.randn(x[:200].shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    fd_noisy = frechet_distance(
        metrics.judge_features(noisy, judge=judge), metrics.judge_features(x[200:400], judge=judge)
    )
    assert 0 < floor < 0.5 * fd_noisy


def test_judge_corrupt_or_missing_fails_with_a_rebuild_message(tmp_path, judge):
    with pytest.raises(metrics.JudgeError, match="train-judge"):
        metrics.load_judge(tmp_path / "nope.safetensors")
    bad = tmp_path / "mnist-judge.safetensors"
    shutil.copy(JUDGE, bad)
    shutil.copy(JUDGE.with_suffix(".json"), bad.with_suffix(".json"))
    raw = bytearray(bad.read_bytes())
    raw[-1] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(metrics.JudgeError, match="sha256"):
        metrics.load_judge(bad)


def test_judge_rejects_bad_image_shapes(judge):
    with pytest.raises(ValueError, match="28"):
        metrics.judge_accuracy(torch.zeros(3, 1, 14, 14), torch.zeros(3), judge=judge)
