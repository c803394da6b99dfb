"""The exact Gaussian-mixture ground truth against independent computations.

Finite differences and autograd for the score, Monte Carlo importance weights for E[x_0 | x_t],
Bayes' rule pointwise and grid integration for q(x_{t-1} | x_t), closed-form single Gaussians for
class-conditional models, and a chi-square test for sampled component weights.
"""

import math

import pytest
import torch

from toy_models.diffusion import p_mean_variance, p_sample, predict_x0_from_eps
from toy_models.gmm import (
    AnalyticModel,
    EmpiricalDistribution,
    GaussianMixture,
    default_gmm,
    gaussian_fit,
    kl_mixture_to_gaussian,
    reverse_conditional,
    true_nll,
)
from toy_models.schedules import make_schedule

F64 = torch.float64


@pytest.fixture(scope="module")
def gmm():
    return default_gmm()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _points(n, seed=0, scale=1.5):
    return scale * torch.randn(n, 2, generator=_gen(seed), dtype=F64)


def _gaussian_logpdf(x, mean, cov):
    """Independent reference: log N(x; mean, cov) by torch.distributions."""
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


# --- the mixture itself ---------------------------------------------------------------------------
def test_default_gmm_is_the_documented_mixture(gmm):
    assert gmm.num_components == 5 and gmm.dim == 2
    assert torch.allclose(gmm.weights, torch.tensor([0.35, 0.25, 0.2, 0.12, 0.08], dtype=F64))
    assert gmm.mean().abs().max() < 1e-12
    assert torch.allclose(gmm.cov().diagonal(), torch.ones(2, dtype=F64))
    ratio = gmm.eigvals.max(1).values / gmm.eigvals.min(1).values
    assert (ratio > 1.9).all(), "every component is anisotropic"
    # well separated: the component of almost every sample is recognisable from its position
    x, labels = gmm.sample(4000, _gen(0))
    assert (gmm.responsibilities(x).argmax(1) == labels).float().mean() > 0.99


def test_log_prob_matches_an_independent_mixture_density(gmm):
    x = _points(300)
    ref = torch.logsumexp(
        torch.stack([math.log(gmm.weights[k]) + _gaussian_logpdf(x, gmm.means[k], gmm.covs[k]) for k in range(5)], 1), 1
    )
    assert torch.allclose(gmm.log_prob(x), ref, atol=1e-10)
    assert torch.allclose(true_nll(gmm, x), -ref, atol=1e-10)
    # and of the noised mixture q_t: abar Sigma + (1 - abar) I, sqrt(abar) mu
    a = 0.3
    ref_t = torch.logsumexp(
        torch.stack(
            [
                math.log(gmm.weights[k])
                + _gaussian_logpdf(x, math.sqrt(a) * gmm.means[k], a * gmm.covs[k] + (1 - a) * torch.eye(2, dtype=F64))
                for k in range(5)
            ],
            1,
        ),
        1,
    )
    assert torch.allclose(gmm.log_prob(x, a), ref_t, atol=1e-10)
    assert torch.allclose(gmm.noised(a).log_prob(x), ref_t, atol=1e-10)


def test_density_integrates_to_one(gmm):
    g = torch.linspace(-6, 6, 301, dtype=F64)
    grid = torch.cartesian_prod(g, g)
    cell = (g[1] - g[0]) ** 2
    for a in (None, 0.5):
        assert abs(gmm.log_prob(grid, a).exp().sum() * cell - 1.0) < 1e-4


def test_noised_moments_follow_eq4(gmm):
    a = 0.42
    n = gmm.noised(a)
    assert torch.allclose(n.mean(), math.sqrt(a) * gmm.mean(), atol=1e-12)
    assert torch.allclose(n.cov(), a * gmm.cov() + (1 - a) * torch.eye(2, dtype=F64), atol=1e-12)


def test_samples_have_the_component_weights(gmm):
    n = 20_000
    _, labels = gmm.sample(n, _gen(1))
    counts = torch.bincount(labels, minlength=5).to(F64)
    expected = n * gmm.weights
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 18.47, f"chi-square {chi2:.1f} beyond the 0.1% critical value for 4 dof"


def test_samples_have_the_component_covariances(gmm):
    x, labels = gmm.sample(20_000, _gen(2))
    for k in range(5):
        xk = x[labels == k]
        assert torch.allclose(xk.mean(0), gmm.means[k], atol=6 * gmm.eigvals[k].max().sqrt() / math.sqrt(len(xk)))
        assert torch.allclose(torch.cov(xk.T), gmm.covs[k], atol=0.1 * gmm.eigvals[k].max())


def test_score_equals_autograd_of_log_prob(gmm):
    x = _points(200).requires_grad_(True)
    for a in (None, 0.9, 0.2, torch.rand(200, generator=_gen(3), dtype=F64)):
        (grad,) = torch.autograd.grad(gmm.log_prob(x, a).sum(), x)
        assert torch.allclose(gmm.score(x.detach(), a), grad, atol=1e-10)


def test_per_example_alpha_bar_equals_one_at_a_time(gmm):
    x = _points(50)
    a = torch.linspace(0.01, 1.0, 50, dtype=F64)
    sc = gmm.score(x, a)
    for i in (0, 17, 49):
        assert torch.allclose(sc[i], gmm.score(x[i : i + 1], float(a[i]))[0], atol=1e-12)


def test_isotropic_and_general_paths_agree():
    pts = _points(40, seed=4)
    iso = GaussianMixture(torch.ones(40), pts, 0.05 * torch.eye(2, dtype=F64).expand(40, 2, 2))
    gen = GaussianMixture(
        torch.ones(40), pts, torch.diag_embed(torch.tensor([0.05, 0.05 + 1e-7], dtype=F64).expand(40, 2))
    )
    assert iso.is_isotropic and not gen.is_isotropic
    x = _points(100, seed=5)
    for name in ("log_prob", "score", "denoise"):
        a = 0.6
        assert torch.allclose(getattr(iso, name)(x, a), getattr(gen, name)(x, a), atol=1e-5), name


def test_from_points_is_a_point_set_until_noised():
    pts = _points(30, seed=6)
    fp = GaussianMixture.from_points(pts)
    assert fp.is_singular
    with pytest.raises(ValueError, match="alpha_bar < 1"):
        fp.log_prob(pts)
    a = 0.7
    x = _points(20, seed=7)
    ref = torch.logsumexp(
        torch.stack([_gaussian_logpdf(x, math.sqrt(a) * p, (1 - a) * torch.eye(2, dtype=F64)) for p in pts], 1), 1
    ) - math.log(30)
    assert torch.allclose(fp.log_prob(x, a), ref, atol=1e-10)
    # the ideal denoiser of a point set is the posterior average of the points
    r = fp.responsibilities(x, a)
    assert torch.allclose(fp.denoise(x, a), r @ pts, atol=1e-12)


def test_empirical_distribution_matches_from_points_and_handles_images():
    pts = _points(60, seed=8)
    fp, emp = GaussianMixture.from_points(pts), EmpiricalDistribution(pts)
    x = _points(40, seed=9)
    for name in ("log_prob", "score", "denoise", "responsibilities"):
        assert torch.allclose(getattr(emp, name)(x, 0.4), getattr(fp, name)(x, 0.4), atol=1e-10), name
    noisy = emp.noised(0.5)
    assert torch.allclose(noisy.log_prob(x, 0.8), fp.noised(0.5).log_prob(x, 0.8), atol=1e-10)
    # images: shapes are kept, and the score is the gradient of log_prob
    imgs = torch.rand(25, 1, 4, 4, generator=_gen(10), dtype=F64) * 2 - 1
    emp_img = EmpiricalDistribution(imgs)
    xi = torch.randn(6, 1, 4, 4, generator=_gen(11), dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(emp_img.log_prob(xi, 0.5).sum(), xi)
    sc = emp_img.score(xi.detach(), 0.5)
    assert sc.shape == xi.shape and torch.allclose(sc, grad, atol=1e-10)
    d = emp_img.denoise(xi.detach(), 0.5)
    assert torch.allclose(d, (xi.detach() + 0.5 * sc) / math.sqrt(0.5), atol=1e-10)


def test_bad_inputs_raise(gmm):
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.ones(3), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]))
    with pytest.raises(ValueError, match="semi-definite"):
        GaussianMixture(torch.ones(1), torch.zeros(1, 2), -torch.eye(2)[None])
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        gmm.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gmm.noised(1.5)
    with pytest.raises(ValueError, match="component index"):
        gmm.component(5)


# --- the analytic model: eps*, score, denoiser ---------------------------------------------------
def test_eps_star_is_minus_sigma_times_finite_difference_gradient(gmm):
    s = make_schedule("cosine", 100)
    model = AnalyticModel(gmm, s)
    x = _points(40, seed=12)
    h = 1e-5
    for t in (1.0, 7.5, 30.0, 64.25, 99.0):
        a = s.alpha_bar(torch.tensor(t))
        fd = torch.stack(
            [(gmm.log_prob(x + h * e, a) - gmm.log_prob(x - h * e, a)) / (2 * h) for e in torch.eye(2, dtype=F64)], 1
        )
        eps = model(x, torch.full((40,), t, dtype=F64))
        assert torch.allclose(eps, -(1 - a).sqrt() * fd, atol=1e-6), t
        assert torch.allclose(model.score(x, t), fd, atol=1e-5 / (1 - a).sqrt().item())


def test_denoise_equals_tweedie(gmm):
    s = make_schedule("linear", 1000)
    model = AnalyticModel(gmm, s)
    x = _points(100, seed=13)
    for t in (3, 250, 999):
        a = s.alphas_cumprod[t]
        tweedie = (x + (1 - a) * model.score(x, t)) / a.sqrt()
        assert torch.allclose(model.denoise(x, t), tweedie, atol=1e-8 / a.sqrt().item())
        # and the diffusion core's conversion of eps to x_0 gives the same thing
        assert torch.allclose(predict_x0_from_eps(s, x, t, model(x, t)), tweedie, atol=1e-8 / a.sqrt().item())


def test_denoise_equals_monte_carlo_posterior_mean(gmm):
    """E[x_0 | x_t] by self-normalised importance weights N(x_t; sqrt(abar) x_0, (1 - abar) I) on x_0 ~ q."""
    x0, _ = gmm.sample(200_000, _gen(14))
    a = 0.3
    x_t = torch.tensor([[0.0, 0.0], [0.8, 0.5], [-0.6, -0.7]], dtype=F64)
    exact = gmm.denoise(x_t, a)
    for i in range(len(x_t)):
        logw = -((x_t[i] - math.sqrt(a) * x0) ** 2).sum(1) / (2 * (1 - a))
        w = torch.softmax(logw, 0)
        mc = w @ x0
        se = (w[:, None] ** 2 * (x0 - mc) ** 2).sum(0).sqrt()
        assert ((mc - exact[i]).abs() < 5 * se + 1e-4).all(), (mc, exact[i], se)


def test_model_protocol_dtype_and_t_zero(gmm):
    s = make_schedule("cosine", 50)
    model = AnalyticModel(gmm, s)
    assert model.parameterization == "eps" and model.num_classes == 5 and model.schedule is s
    x = _points(8, seed=15).float()
    out = p_mean_variance(s, model, x, 10)
    assert out.mean.dtype == torch.float32 and out.mean.shape == x.shape
    eps0 = model(x, torch.zeros(8))
    assert eps0.dtype == torch.float32 and torch.equal(eps0, torch.zeros_like(eps0)), "eps* = 0 at abar = 1"
    # the score stays finite at t = 0 (it is the data's own score)
    assert torch.allclose(model.score(x.double(), 0), gmm.score(x.double()), atol=1e-12)
    # a point set: finite at t = 0, and the denoiser returns the nearest point
    pts = _points(20, seed=16)
    fp_model = AnalyticModel(GaussianMixture.from_points(pts), s)
    e = fp_model(pts[:5] + 1e-6, torch.zeros(5, dtype=F64))
    assert torch.isfinite(e).all()
    assert torch.allclose(fp_model.denoise(pts[:5] + 1e-3, torch.zeros(5)), pts[:5], atol=1e-9)


def test_class_conditional_model_gives_the_component_eps(gmm):
    s = make_schedule("cosine", 200)
    model = AnalyticModel(gmm, s)
    x = _points(30, seed=17)
    t = 60
    a = s.alphas_cumprod[t]
    for c in range(5):
        # one Gaussian: eps* = sqrt(1 - abar) C^{-1} (x - sqrt(abar) mu), C = abar Sigma + (1 - abar) I
        C = a * gmm.covs[c] + (1 - a) * torch.eye(2, dtype=F64)
        ref = (1 - a).sqrt() * torch.linalg.solve(C, (x - a.sqrt() * gmm.means[c]).T).T
        got = model(x, torch.full((30,), float(t)), torch.full((30,), c))
        assert torch.allclose(got, ref, atol=1e-10), c
    null = model(x, torch.full((30,), float(t)), torch.full((30,), 5))
    assert torch.allclose(null, model(x, torch.full((30,), float(t))), atol=1e-14)
    # a mixed batch: each row answers for its own label
    y = torch.arange(30) % 6
    mixed = model(x, torch.full((30,), float(t)), y)
    for c in range(6):
        rows = y == c
        assert torch.allclose(mixed[rows], model(x[rows], torch.full((int(rows.sum()),), float(t)), y[rows]))


def test_label_map_groups_components(gmm):
    s = make_schedule("cosine", 100)
    model = AnalyticModel(gmm, s, label_map=[0, 0, 1, 1, 1])
    assert model.num_classes == 2
    x = _points(20, seed=18)
    sub = gmm.subset(torch.tensor([0, 1]))
    assert torch.allclose(sub.weights, torch.tensor([0.35, 0.25], dtype=F64) / 0.6)
    a = s.alphas_cumprod[40]
    got = model.score(x, 40, torch.zeros(20, dtype=torch.long))
    assert torch.allclose(got, sub.score(x, a), atol=1e-12)
    assert torch.allclose(model.log_prob(x, 40, torch.full((20,), 2)), gmm.log_prob(x, a), atol=1e-12)
    with pytest.raises(ValueError, match="null label"):
        model(x, torch.full((20,), 40.0), torch.full((20,), 3))
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        model(x, torch.full((20,), 101.0))


# --- the exact reverse step -----------------------------------------------------------------------
@pytest.mark.parametrize("name,T,t", [("cosine", 4, 2), ("linear", 1000, 500), ("cosine", 10, 1)])
def test_reverse_conditional_satisfies_bayes_pointwise(gmm, name, T, t):
    s = make_schedule(name, T)
    x_t = torch.tensor([0.4, 0.6], dtype=F64)
    rc = reverse_conditional(gmm, s, x_t, t)
    x_prev = _points(500, seed=19)
    a_prev, a_t = s.alphas_cumprod[t - 1], s.alphas_cumprod[t]
    alpha, beta = s.alphas[t], s.betas[t]
    lhs = rc.log_prob(x_prev) + gmm.log_prob(x_t[None], a_t)
    trans = -((x_t - alpha.sqrt() * x_prev) ** 2).sum(1) / (2 * beta) - torch.log(2 * math.pi * beta)
    rhs = trans + gmm.log_prob(x_prev, a_prev)
    assert torch.allclose(lhs, rhs, atol=1e-9)


def test_reverse_conditional_moments_match_grid_integration(gmm):
    s = make_schedule("cosine", 4)
    t = 2
    x_t = torch.tensor([0.35, 0.45], dtype=F64)
    rc = reverse_conditional(gmm, s, x_t, t)
    g = torch.linspace(-5, 5, 401, dtype=F64)
    grid = torch.cartesian_prod(g, g)
    alpha, beta = s.alphas[t], s.betas[t]
    logp = gmm.log_prob(grid, s.alphas_cumprod[t - 1]) - ((x_t - alpha.sqrt() * grid) ** 2).sum(1) / (2 * beta)
    w = torch.softmax(logp, 0)
    mean = w @ grid
    cov = (w[:, None] * (grid - mean)).T @ (grid - mean)
    assert torch.allclose(rc.mean(), mean, atol=1e-6)
    assert torch.allclose(rc.cov(), cov, atol=1e-6)
    assert rc.num_components == 5 and (rc.weights > 0.05).sum() >= 2, "with big steps it is multimodal"


def test_reverse_conditional_of_one_gaussian_is_one_gaussian(gmm):
    s = make_schedule("linear", 100)
    comp = gmm.component(2)
    rc = reverse_conditional(comp, s, torch.tensor([0.1, -0.2], dtype=F64), 30)
    m, c = gaussian_fit(rc)
    assert rc.num_components == 1 and torch.allclose(rc.covs[0], c, atol=1e-14)
    kl, _ = kl_mixture_to_gaussian(rc, m, c, method="quadrature")
    assert abs(kl) < 1e-10


def test_gaussian_fit_minimises_kl(gmm):
    mix = gmm.noised(0.6)
    m, c = gaussian_fit(mix)
    best, _ = kl_mixture_to_gaussian(mix, m, c, method="quadrature")
    mc, se = kl_mixture_to_gaussian(mix, m, c, n=40_000, generator=_gen(20))
    assert abs(mc - best) < 4 * se
    for dm, dc in ((0.1, 0.0), (0.0, 0.1), (-0.05, -0.1)):
        other, _ = kl_mixture_to_gaussian(mix, m + dm, c * (1 + dc), method="quadrature")
        assert other > best + 1e-4


def test_small_steps_make_the_reverse_step_nearly_gaussian(gmm):
    """Same noise level (t = T/2 of a cosine schedule, abar ~ 0.49), x_t between two modes:
    KL(q(x_{t-1} | x_t) || its best Gaussian) falls fast as the number of steps T grows."""
    kls = []
    for T in (2, 4, 10, 20, 100, 1000):
        s = make_schedule("cosine", T)
        t = T // 2
        x_t = s.alphas_cumprod[t].sqrt() * 0.5 * (gmm.means[0] + gmm.means[1])
        rc = reverse_conditional(gmm, s, x_t, t)
        kl, _ = kl_mixture_to_gaussian(rc, *gaussian_fit(rc), method="quadrature")
        kls.append(kl)
        if T <= 10:  # the quadrature agrees with Monte Carlo where KL is large enough to see
            mc, se = kl_mixture_to_gaussian(rc, *gaussian_fit(rc), n=20_000, generator=_gen(T))
            assert abs(mc - kl) < 4 * se + 1e-6, (T, mc, kl, se)
    assert all(a > b for a, b in zip(kls, kls[1:])), kls
    assert kls[0] > 0.5, "two big steps: the reverse step is far from Gaussian"
    assert kls[-1] < 1e-6, "a thousand small steps: it is Gaussian to within a micro-nat"


def test_reverse_conditional_bad_inputs(gmm):
    s = make_schedule("cosine", 10)
    with pytest.raises(ValueError, match="t must be an integer from 1 to T = 10"):
        reverse_conditional(gmm, s, torch.zeros(2), 0)
    with pytest.raises(ValueError, match="one point"):
        reverse_conditional(gmm, s, torch.zeros(3, 2), 3)
    with pytest.raises(ValueError, match="method"):
        kl_mixture_to_gaussian(gmm, torch.zeros(2), torch.eye(2), method="grid")


def test_ancestral_sampling_with_the_exact_model_recovers_the_weights(gmm):
    """Drop-in for a network: Ho et al. Algorithm 2 (diffusion.p_sample) with eps* lands on the mixture.

    With sigma_t^2 = beta_t the samples match the data's average log-density; with beta-tilde_t the
    last steps add too little noise for data with spread, and samples come out over-concentrated."""
    s = make_schedule("cosine", 100)
    model = AnalyticModel(gmm, s)
    gen = _gen(21)
    n = 3000
    truth = gmm.log_prob(gmm.sample(n, gen)[0]).mean()  # standard error ~0.02
    samples = {}
    for variance in ("beta", "beta_tilde"):
        x = torch.randn(n, 2, generator=gen, dtype=F64)
        with torch.no_grad():
            for t in range(s.T, 0, -1):
                x, _ = p_sample(s, model, x, t, variance=variance, generator=gen)
        samples[variance] = x
    x = samples["beta"]
    counts = torch.bincount(gmm.responsibilities(x).argmax(1), minlength=5).to(F64)
    expected = n * gmm.weights
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 18.47, (counts, expected)
    assert abs(gmm.log_prob(x).mean() - truth) < 0.1
    assert gmm.log_prob(samples["beta_tilde"]).mean() > truth + 0.1


def test_class_conditional_point_set_of_images():
    imgs = torch.rand(30, 1, 4, 4, generator=_gen(22), dtype=F64) * 2 - 1
    labels = torch.arange(30) % 3
    s = make_schedule("cosine", 100)
    model = AnalyticModel(EmpiricalDistribution(imgs), s, label_map=labels)
    assert model.num_classes == 3
    x_t = torch.randn(6, 1, 4, 4, generator=_gen(23), dtype=F64)
    y = torch.tensor([0, 1, 2, 3, 0, 3])
    d = model.denoise(x_t, torch.full((6,), 40.0), y)
    assert d.shape == x_t.shape
    for i in range(6):
        pool = imgs if y[i] == 3 else imgs[labels == y[i]]
        r = EmpiricalDistribution(pool).responsibilities(x_t[i : i + 1], s.alphas_cumprod[40])
        assert torch.allclose(d[i], (r @ pool.reshape(len(pool), -1)).reshape(1, 4, 4), atol=1e-10)
    # near t = 0 the ideal denoiser snaps to the nearest training image of the requested class
    near = imgs[labels == 1][2] + 1e-3
    assert torch.allclose(
        model.denoise(near[None].float(), torch.zeros(1), torch.tensor([1])).double(),
        imgs[labels == 1][2][None],
        atol=1e-6,
    )
