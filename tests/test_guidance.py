"""Guidance wrappers: exact identities at special scales, Bayes' rule on the exact mixture, autograd vs
finite differences."""

import math

import pytest
import torch

from toy_models.guidance import ClassifierFreeGuidance, ClassifierGuidance, classifier_log_prob_grad
from toy_models.schedules import make_schedule

gmm_mod = pytest.importorskip("toy_models.gmm")
samplers = pytest.importorskip("toy_models.samplers")

S = make_schedule("linear", 100, beta_start=1e-4, beta_end=0.2)
GMM = gmm_mod.default_gmm()
K = GMM.num_components  # labels 0..K-1, K = the null label


@pytest.fixture(scope="module")
def exact():
    return gmm_mod.AnalyticModel(GMM, S)


class ExactClassifier(torch.nn.Module):
    """log p(y = k | x_t) of the noised mixture, differentiable (independent of gmm.py's internals).

    q_t = sum_k w_k N(sqrt(abar) mu_k, abar Sigma_k + (1 - abar) I); logits = log w_k + log N_k(x).
    """

    def forward(self, x, t, y=None):
        a = S.alpha_bar(t.detach().double().cpu())[:, None]  # (B, 1)
        out = []
        for k in range(K):
            cov = a[:, :, None] * GMM.covs[k] + (1 - a)[:, :, None] * torch.eye(2, dtype=torch.float64)
            mvn = torch.distributions.MultivariateNormal(a.sqrt() * GMM.means[k], covariance_matrix=cov)
            out.append(math.log(float(GMM.weights[k])) + mvn.log_prob(x.double()))
        return torch.stack(out, 1)  # (B, K)


def _x_t(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randint(0, K, (n,), generator=g)


# --- classifier-free guidance ------------------------------------------------------------------------
def test_cfg_special_scales_are_exact(exact):
    x, y = _x_t()
    t = torch.full((x.shape[0],), 37.0, dtype=torch.float64)
    null = torch.full_like(y, K)
    assert torch.equal(ClassifierFreeGuidance(exact, 0.0, K)(x, t, y), exact(x, t, null))
    assert torch.equal(ClassifierFreeGuidance(exact, 1.0, K)(x, t, y), exact(x, t, y))
    assert torch.equal(ClassifierFreeGuidance(exact, 3.0, K)(x, t, None), exact(x, t, null))


def test_cfg_combination_in_one_batched_call(exact):
    x, y = _x_t()
    t = torch.full((x.shape[0],), 50.0, dtype=torch.float64)
    calls = []

    class Counting(torch.nn.Module):
        parameterization = "eps"

        def forward(self, x_t, t, y=None):
            calls.append(x_t.shape[0])
            return exact(x_t, t, y)

    w = 2.5
    got = ClassifierFreeGuidance(Counting(), w, K)(x, t, y)
    assert calls == [2 * x.shape[0]]  # one call on the doubled batch
    e_c, e_u = exact(x, t, y), exact(x, t, torch.full_like(y, K))
    torch.testing.assert_close(got, e_u + w * (e_c - e_u), rtol=1e-12, atol=1e-12)
    # Ho & Salimans' form (1 + w') eps_c - w' eps_u with w' = w - 1 is the same thing
    torch.testing.assert_close(got, w * e_c - (w - 1) * e_u, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_cfg_scale_0_and_1_match_the_unguided_samplers(sampler):
    fn = samplers.SAMPLERS[sampler]
    s = make_schedule("linear", 20, beta_start=1e-3, beta_end=0.5)  # short: DDPM runs every step
    exact = gmm_mod.AnalyticModel(GMM, s)
    x_T, y = _x_t(32, seed=1)
    null = torch.full_like(y, K)
    kw = dict(steps=None if sampler == "ddpm" else 10)
    if sampler == "ddim":
        kw["eta"] = 1.0  # stochastic, so the generator matters too

    def run(model, labels):
        return fn(model, s, x_T, y=labels, generator=torch.Generator().manual_seed(7), **kw)

    assert torch.equal(run(ClassifierFreeGuidance(exact, 0.0, K), y), run(exact, null))
    assert torch.equal(run(ClassifierFreeGuidance(exact, 1.0, K), y), run(exact, y))


def test_cfg_keeps_parameterization_and_rejects_bad_scale(exact):
    assert ClassifierFreeGuidance(exact, 2.0, K).parameterization == "eps"
    with pytest.raises(ValueError, match="finite"):
        ClassifierFreeGuidance(exact, float("nan"), K)


# --- classifier guidance -----------------------------------------------------------------------------
def test_classifier_gradient_matches_finite_differences():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()

    def clf(x, t):
        return net(torch.cat([x, t[:, None] / 100], 1))

    x, _ = _x_t(8, seed=2)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    t = torch.linspace(1, 99, 8, dtype=torch.float64)
    grad = classifier_log_prob_grad(clf, x, t, y)
    h, fd = 1e-6, torch.zeros_like(x)
    for d in range(2):
        e = torch.zeros_like(x)
        e[:, d] = h
        with torch.no_grad():
            lp = lambda z: torch.log_softmax(clf(z, t), 1).gather(1, y[:, None])[:, 0]  # noqa: E731
            fd[:, d] = (lp(x + e) - lp(x - e)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_classifier_guidance_at_scale_1_with_the_exact_classifier_is_the_conditional_model(exact):
    """Bayes: grad log q_t(x | y) = grad log q_t(x) + grad log q_t(y | x); eps = -sqrt(1 - abar) score."""
    x, y = _x_t(64, seed=3)
    for tv in (5.0, 40.5, 90.0):  # real t too (ODE samplers)
        t = torch.full((x.shape[0],), tv, dtype=torch.float64)
        guided = ClassifierGuidance(exact, ExactClassifier(), 1.0, S)(x, t, y)
        torch.testing.assert_close(guided, exact(x, t, y), rtol=1e-7, atol=1e-9)


def test_classifier_guidance_formula_and_x0_parameterization(exact):
    x, y = _x_t(16, seed=4)
    t = torch.full((x.shape[0],), 30.0, dtype=torch.float64)
    s_scale, clf = 2.5, ExactClassifier()
    grad = classifier_log_prob_grad(clf, x, t, y)
    abar = float(S.alphas_cumprod[30])
    want = exact(x, t) - s_scale * math.sqrt(1 - abar) * grad
    torch.testing.assert_close(ClassifierGuidance(exact, clf, s_scale, S)(x, t, y), want)

    class X0Model(torch.nn.Module):  # the same model, predicting x_0 instead of eps
        parameterization = "x0"

        def forward(self, x_t, t, y=None):
            a = S.alpha_bar(t)[:, None]
            return (x_t - (1 - a).sqrt() * exact(x_t, t, y)) / a.sqrt()

    x0_guided = ClassifierGuidance(X0Model(), clf, s_scale, S)(x, t, y)
    eps_from_x0 = (x - math.sqrt(abar) * x0_guided) / math.sqrt(1 - abar)
    torch.testing.assert_close(eps_from_x0, want, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("sampler", ["ddim", "ode"])
def test_classifier_guidance_scale_0_equals_unguided_sampler(exact, sampler):
    fn = samplers.SAMPLERS[sampler]
    x_T, y = _x_t(32, seed=5)
    guided = ClassifierGuidance(exact, ExactClassifier(), 0.0, S)
    kw = dict(steps=10, generator=torch.Generator().manual_seed(3))
    a = fn(guided, S, x_T, y=y, **kw)
    kw["generator"] = torch.Generator().manual_seed(3)
    assert torch.equal(a, fn(exact, S, x_T, **kw))
    # and a positive scale actually moves the samples toward the requested components
    kw["generator"] = torch.Generator().manual_seed(3)
    g = fn(ClassifierGuidance(exact, ExactClassifier(), 3.0, S), S, x_T, y=y, **kw)
    hit = (ExactClassifier()(g, torch.zeros(32, dtype=torch.float64)).argmax(1) == y).double().mean()
    base = (ExactClassifier()(a, torch.zeros(32, dtype=torch.float64)).argmax(1) == y).double().mean()
    assert hit > 0.9 and hit > base


def test_classifier_guidance_rejects_mean_models_and_bad_scale(exact):
    class MeanModel(torch.nn.Module):
        parameterization = "mean"

    with pytest.raises(ValueError, match="'eps' or 'x0'"):
        ClassifierGuidance(MeanModel(), ExactClassifier(), 1.0, S)
    with pytest.raises(ValueError, match="finite"):
        ClassifierGuidance(exact, ExactClassifier(), float("inf"), S)
