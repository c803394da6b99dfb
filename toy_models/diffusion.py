"""Gaussian diffusion: the forward process, its posterior, and the learned reverse step.

Read beside Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models".
Time t runs 1..T; tables are indexed by t (see schedules.py). Shapes: x is (B, ...) —
(B, 2) points or (B, 1, 28, 28) images — and t is an int or a (B,) tensor.

A *model* is any callable `model(x_t, t, y=None) -> tensor shaped like x_t`, where t is a
(B,) float tensor of times and y optional labels. Its attribute `parameterization` says what
the output means: "eps" (the noise, the default), "x0" (the clean data) or "mean" (the mean
of p(x_{t-1} | x_t)). Networks and the exact Gaussian-mixture model both follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .schedules import Schedule
from .shapes import as_timesteps, extract

PARAMETERIZATIONS = ("eps", "x0", "mean")
VARIANCES = ("beta", "beta_tilde")


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


# --- the forward process q -------------------------------------------------------------------
def q_step_sample(s: Schedule, x_prev: torch.Tensor, t, noise=None, generator=None) -> torch.Tensor:
    """One Markov step, x_t ~ q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)  (eq. 2)."""
    noise = _noise_like(x_prev, generator) if noise is None else noise
    return extract(s.sqrt_alphas, t, x_prev) * x_prev + extract(s.sqrt_betas, t, x_prev) * noise


def q_mean_variance(s: Schedule, x0: torch.Tensor, t):
    """Mean, variance and log-variance of q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)  (eq. 4)."""
    mean = extract(s.sqrt_alphas_cumprod, t, x0) * x0
    var = extract(s.one_minus_alphas_cumprod, t, x0)
    return mean, var, extract(s.log_one_minus_alphas_cumprod, t, x0)


def q_sample(s: Schedule, x0: torch.Tensor, t, noise=None, generator=None) -> torch.Tensor:
    """Jump straight to x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps  (eq. 4, reparameterised)."""
    noise = _noise_like(x0, generator) if noise is None else noise
    return extract(s.sqrt_alphas_cumprod, t, x0) * x0 + extract(s.sqrt_one_minus_alphas_cumprod, t, x0) * noise


def q_chain(s: Schedule, x0: torch.Tensor, stride: int = 1, generator=None):
    """Run the forward chain step by step, x_0 -> x_1 -> ... -> x_T  (eq. 2, iterated).

    Keeps every `stride`-th state (and always x_0 and x_T) to bound memory.
    Returns (ts, xs): ts a list of the kept times, xs a (len(ts), B, ...) tensor.
    """
    if int(stride) < 1:
        raise ValueError(f"stride must be a positive integer; got {stride}")
    ts, xs, x = [0], [x0], x0
    for t in range(1, s.T + 1):
        x = q_step_sample(s, x, t, generator=generator)
        if t % stride == 0 or t == s.T:
            ts.append(t)
            xs.append(x)
    return ts, torch.stack(xs)


# --- the posterior q(x_{t-1} | x_t, x_0) -------------------------------------------------------
def q_posterior_mean_variance(s: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t):
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)  (eqs. 6-7).

    mean = coef1 * x_0 + coef2 * x_t, with coef1 = beta_t sqrt(abar_{t-1}) / (1 - abar_t) and
    coef2 = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t); variance = beta-tilde_t.
    """
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 and x_t must have the same shape; got {tuple(x0.shape)} and {tuple(x_t.shape)}")
    mean = extract(s.posterior_mean_coef1, t, x_t) * x0 + extract(s.posterior_mean_coef2, t, x_t) * x_t
    var = extract(s.posterior_variance, t, x_t)
    return mean, var, extract(s.posterior_log_variance_clipped, t, x_t)


# --- conversions between what a model can predict ---------------------------------------------
def predict_x0_from_eps(s: Schedule, x_t, t, eps):
    """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)   (eq. 4 solved for x_0)."""
    return extract(s.sqrt_recip_alphas_cumprod, t, x_t) * x_t - extract(s.sqrt_recipm1_alphas_cumprod, t, x_t) * eps


def predict_eps_from_x0(s: Schedule, x_t, t, x0):
    """eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)   (eq. 4 solved for eps)."""
    return (extract(s.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / extract(s.sqrt_recipm1_alphas_cumprod, t, x_t)


def predict_x0_from_mean(s: Schedule, x_t, t, mean):
    """x_0 from the posterior mean: mean = coef1 x_0 + coef2 x_t   (eq. 7 solved for x_0)."""
    return (mean - extract(s.posterior_mean_coef2, t, x_t) * x_t) / extract(s.posterior_mean_coef1, t, x_t)


def _signal_and_noise_scales(s: Schedule, t, x_t):
    """(sqrt(abar_t), sqrt(1 - abar_t)) shaped to broadcast against x_t: read from the float64 tables at
    integer t, from Schedule.alpha_bar (log-linear in t) at real t."""
    if isinstance(t, int) or torch.equal(t, t.round()):
        return extract(s.sqrt_alphas_cumprod, t, x_t), extract(s.sqrt_one_minus_alphas_cumprod, t, x_t)
    abar = s.alpha_bar(t.cpu()).to(x_t.device).reshape(-1, *[1] * (x_t.ndim - 1))  # (B, 1, ...) float64
    return abar.sqrt().to(x_t.dtype), (1.0 - abar).sqrt().to(x_t.dtype)


def eps_and_x0(s: Schedule, output, x_t, t, parameterization="eps", clip_x0=None):
    """(pred_eps, pred_x0) from a model's output, whatever it predicts: the one place this is done.

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (eq. 4) links the two predictions; t may be real
    (the ODE) except for a "mean" model, defined on the schedule's integer grid only. When
    clip_x0 = (lo, hi), x_0 is clipped and eps recomputed from the clipped x_0, so that the next
    step moves towards the clipped estimate (without it a guided model drifts off the data).
    """
    if not isinstance(t, int):
        t = as_timesteps(t, x_t.shape[0], x_t.device)
    sa, s1 = _signal_and_noise_scales(s, t, x_t)
    if parameterization == "eps":
        eps, x0 = output, (x_t - s1 * output) / sa
    elif parameterization == "x0":
        eps, x0 = (x_t - sa * output) / s1, output
    elif parameterization == "mean":
        if not isinstance(t, int) and not torch.equal(t, t.round()):
            raise ValueError("a model with parameterization 'mean' can only be evaluated at integer t")
        x0 = predict_x0_from_mean(s, x_t, t if isinstance(t, int) else t.long(), output)
        eps = (x_t - sa * x0) / s1
    else:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; got {parameterization!r}")
    if clip_x0 is not None:
        x0 = x0.clamp(*clip_x0)
        eps = (x_t - sa * x0) / s1
    return eps, x0


def eps_to_score(s: Schedule, eps, t, x_t=None):
    """score = grad log q(x_t) = -eps / sqrt(1 - abar_t)   (Song et al. 2021; Ho et al. eq. 11)."""
    ref = eps if x_t is None else x_t
    return -eps / extract(s.sqrt_one_minus_alphas_cumprod, t, ref)


def score_to_eps(s: Schedule, score, t):
    """eps = -sqrt(1 - abar_t) * score."""
    return -extract(s.sqrt_one_minus_alphas_cumprod, t, score) * score


# --- the learned reverse step p_theta(x_{t-1} | x_t) ------------------------------------------
@dataclass
class PMeanVar:
    """What one reverse step knows about p_theta(x_{t-1} | x_t); every tensor shaped like x_t."""

    mean: torch.Tensor  # mu_theta(x_t, t)
    variance: torch.Tensor  # sigma_t^2, broadcastable
    log_variance: torch.Tensor  # log sigma_t^2, broadcastable
    pred_x0: torch.Tensor  # the model's x_0 estimate
    pred_eps: torch.Tensor  # the model's noise estimate


def call_model(model, x_t: torch.Tensor, t, y=None) -> torch.Tensor:
    """Call a model with t as a (B,) float tensor and check the output shape."""
    t = as_timesteps(t, x_t.shape[0], x_t.device, x_t.dtype)  # an int stays an expanded view: one t
    out = model(x_t, t, y)
    if out.shape != x_t.shape:
        raise ValueError(f"the model returned shape {tuple(out.shape)} for an input of shape {tuple(x_t.shape)}")
    return out


def parameterization_of(model) -> str:
    p = getattr(model, "parameterization", "eps")
    if p not in PARAMETERIZATIONS:
        raise ValueError(f"model.parameterization must be one of {PARAMETERIZATIONS}; got {p!r}")
    return p


def p_mean_variance_from_output(
    s: Schedule, output, x_t, t, parameterization="eps", variance="beta_tilde", clip_x0=None
) -> PMeanVar:
    """Turn a model's raw output into the Gaussian p_theta(x_{t-1} | x_t)  (eqs. 1, 11).

    parameterization: "eps" (Ho et al. eq. 11), "x0", or "mean".
    variance: "beta" (sigma_t^2 = beta_t) or "beta_tilde" (sigma_t^2 = beta-tilde_t), the two
        choices of Ho et al. section 3.2.
    clip_x0: (lo, hi) to clip the x_0 estimate (images live in [-1, 1]), or None. When clipping,
        eps is recomputed from the clipped x_0 so the two stay consistent.
    """
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}; got {variance!r}")
    pred_eps, pred_x0 = eps_and_x0(s, output, x_t, t, parameterization, clip_x0)
    if parameterization == "mean" and clip_x0 is None:
        mean = output
    else:
        mean, _, _ = q_posterior_mean_variance(s, pred_x0, x_t, t)
    if variance == "beta":
        var, log_var = extract(s.betas, t, x_t), extract(s.log_betas, t, x_t)
    else:
        var, log_var = extract(s.posterior_variance, t, x_t), extract(s.posterior_log_variance_clipped, t, x_t)
    return PMeanVar(mean=mean, variance=var, log_variance=log_var, pred_x0=pred_x0, pred_eps=pred_eps)


def p_mean_variance(s: Schedule, model, x_t, t, y=None, variance="beta_tilde", clip_x0=None) -> PMeanVar:
    """p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I) for a model (see module docstring)."""
    out = call_model(model, x_t, t, y)
    return p_mean_variance_from_output(s, out, x_t, t, parameterization_of(model), variance, clip_x0)


def p_sample(s: Schedule, model, x_t, t: int, y=None, variance="beta_tilde", clip_x0=None, generator=None):
    """One ancestral step x_{t-1} ~ p_theta(x_{t-1} | x_t) (Ho et al. Algorithm 2, line 4).

    No noise is added at t = 1: the chain ends on the mean. Returns (x_{t-1}, PMeanVar).
    """
    out = p_mean_variance(s, model, x_t, t, y, variance, clip_x0)
    if t > 1:
        return out.mean + torch.exp(0.5 * out.log_variance) * _noise_like(x_t, generator), out
    return out.mean, out
