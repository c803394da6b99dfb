"""The variational bound (ELBO) of a diffusion model, term by term (Ho et al. 2020, eq. 5).

    -log p(x_0) <= L = L_T + sum_{t=2}^T L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || N(0, I))                      the prior term (no parameters)
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))   for t = 2..T, x_t ~ q(x_t | x_0)
    L_0     = -log p_theta(x_0 | x_1)                          discretized for 8-bit images (eq. 13),
                                                               a Gaussian density for continuous data

Every term is per example, summed over dimensions, in nats. Divide by D ln 2 for bits/dim.
In `ElboTerms.terms`, row t - 1 holds the term computed at time t: row 0 is L_0, row t - 1
is L_{t-1}. That keeps the paper's subscripts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .diffusion import call_model, p_mean_variance, q_mean_variance, q_posterior_mean_variance, q_sample
from .schedules import Schedule
from .shapes import as_timesteps

DATA_KINDS = ("continuous", "image8bit")


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """Phi(x) by the tanh approximation used by Ho et al.'s code (error < 3e-4)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def standard_normal_cdf(x):
    """Phi(x), exact; via erfc, which keeps its precision far in the lower tail."""
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log P(x) for 8-bit data scaled to [-1, 1], under N(means, e^{2 log_scales})  (Ho et al. eq. 13).

    Each of the 256 values owns a bin of width 2/255; the end bins stretch to -inf and +inf,
    so the probabilities of the 256 values sum to one. Elementwise, in nats.
    """
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log(standard_normal_cdf(-inv_stdv * (centered - 1.0 / 255.0)).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))),
    )
    return log_probs


def gaussian_log_likelihood(x, mean, log_var):
    """log N(x; mean, e^log_var), elementwise, in nats (for continuous data such as 2D points)."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 * torch.exp(-log_var))


def _sum_dims(v):
    return v.reshape(v.shape[0], -1).sum(1)


def prior_kl(s: Schedule, x0):
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, in nats."""
    mean, _, log_var = q_mean_variance(s, x0, s.T)
    return _sum_dims(normal_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(mean)))


def vb_term(
    s: Schedule, model, x0, t, y=None, variance="beta_tilde", data_kind="continuous", noise=None, generator=None
):
    """L_{t-1} at time t (an int or a (B,) tensor; t = 1 gives L_0), per example, in nats.

    x_t is drawn from q(x_t | x_0) (or built from the given noise).
    """
    if data_kind not in DATA_KINDS:
        raise ValueError(f"data_kind must be one of {DATA_KINDS}; got {data_kind!r}")
    t = as_timesteps(t, x0.shape[0]).long()
    x_t = q_sample(s, x0, t, noise=noise, generator=generator)
    out = p_mean_variance(s, model, x_t, t, y, variance)
    # L_0 = -log p_theta(x_0 | x_1): a likelihood of the data under the last reverse step
    if data_kind == "image8bit":
        ll = discretized_gaussian_log_likelihood(x0, out.mean, 0.5 * out.log_variance.expand_as(x0))
    else:
        ll = gaussian_log_likelihood(x0, out.mean, out.log_variance.expand_as(x0))
    # L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)) for t >= 2
    true_mean, _, true_log_var = q_posterior_mean_variance(s, x0, x_t, t)
    kl = normal_kl(true_mean, true_log_var, out.mean, out.log_variance)
    return torch.where(t == 1, -_sum_dims(ll), _sum_dims(kl))


@dataclass
class ElboTerms:
    """Every term of the bound for a batch; nats, per example."""

    prior: torch.Tensor  # (B,) L_T
    terms: torch.Tensor  # (T, B) row t-1 = L_{t-1}; row 0 = L_0
    dims: int  # D, the number of dimensions per example (for bits/dim)

    @property
    def total(self) -> torch.Tensor:
        """(B,) -ELBO = L_T + sum_t L_{t-1}, in nats; an upper bound on -log p(x_0)."""
        return self.prior + self.terms.sum(0)

    def bits_per_dim(self, nats: torch.Tensor) -> torch.Tensor:
        return nats / (self.dims * math.log(2.0))


def elbo_terms(
    s: Schedule, model, x0, y=None, variance="beta_tilde", data_kind="continuous", generator=None, progress=None
) -> ElboTerms:
    """The exact sum over every t = 1..T (one x_t draw per example and t).

    progress: optional callable(done, total), called after each t.
    """
    rows = []
    with torch.no_grad():
        for t in range(1, s.T + 1):
            rows.append(vb_term(s, model, x0, t, y, variance, data_kind, generator=generator))
            if progress is not None:
                progress(t, s.T)
        return ElboTerms(prior=prior_kl(s, x0), terms=torch.stack(rows), dims=x0[0].numel())


@dataclass
class ElboEstimate:
    """An unbiased Monte Carlo estimate of the bound: L_T + T * E_t[L_{t-1}], t ~ U{1..T}."""

    mean: float  # nats per example, averaged over the batch
    stderr: float  # its standard error
    samples: torch.Tensor  # (n_t * B,) the individual single-t estimates


def elbo_monte_carlo(
    s: Schedule, model, x0, n_t: int = 1, y=None, variance="beta_tilde", data_kind="continuous", generator=None
) -> ElboEstimate:
    """Estimate the bound with n_t random times per example instead of all T.

    Each sample L_T + T * L_{t-1}(x_0, t) has expectation -ELBO(x_0); their spread is the
    price of not summing over every t.
    """
    if n_t < 1:
        raise ValueError(f"n_t must be at least 1; got {n_t}")
    samples = []
    with torch.no_grad():
        prior = prior_kl(s, x0)
        for _ in range(n_t):
            t = torch.randint(1, s.T + 1, (x0.shape[0],), generator=generator)
            term = vb_term(s, model, x0, t, y, variance, data_kind, generator=generator)
            samples.append(prior + s.T * term)
    samples = torch.cat(samples)
    n = samples.numel()
    return ElboEstimate(
        mean=samples.mean().item(), stderr=(samples.std() / math.sqrt(n)).item() if n > 1 else math.inf, samples=samples
    )


# --- L_simple and its weights ------------------------------------------------------------------
def l_simple(s: Schedule, model, x0, t, y=None, noise=None, generator=None):
    """Ho et al. eq. 14: || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2, per example."""
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype) if noise is None else noise
    x_t = q_sample(s, x0, t, noise)
    return _sum_dims((noise - call_model(model, x_t, t, y)) ** 2)


def vb_weights(s: Schedule, variance="beta_tilde"):
    """For an eps-model, L_{t-1} = lambda_t * ||eps - eps_theta||^2 + D * c_t  (Ho et al. eq. 12).

    lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)); c_t = KL(N(0, beta-tilde_t) || N(0, sigma_t^2))
    per dimension (zero when sigma_t^2 = beta-tilde_t). Both are (T + 1,) tables indexed by t; they
    hold for t >= 2 (entries 0 and 1 are 0: L_0 is a likelihood, not a KL).
    """
    if variance == "beta":
        sigma2 = s.betas.clone()
    elif variance == "beta_tilde":
        sigma2 = s.posterior_variance.clone()
    else:
        raise ValueError(f"variance must be one of ('beta', 'beta_tilde'); got {variance!r}")
    lam = torch.zeros_like(s.betas)
    c = torch.zeros_like(s.betas)
    if s.T >= 2:
        b, a, acp, pv = s.betas[2:], s.alphas[2:], s.alphas_cumprod[2:], s.posterior_variance[2:]
        lam[2:] = b**2 / (2 * sigma2[2:] * a * (1 - acp))
        c[2:] = 0.5 * (torch.log(sigma2[2:] / pv) + pv / sigma2[2:] - 1)
    return lam, c
