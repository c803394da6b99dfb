"""Log-likelihood under a diffusion model's probability-flow ODE, exact up to the solver's error.

Which density this is: the ODE defines its own model of the data, a deterministic flow from N(0, I). With
the exact score its marginals are the diffusion's q_t and its density at t = 0 is the data's; with a
learned score it is a different density from that of the stochastic reverse chain p_theta, whose
log-likelihood the ELBO bounds (elbo.py). Nothing orders the two in general: an ODE NLL below a chain's
bound is an observation about a model, not a theorem.

The ODE dx/dt = f(x, t) = -1/2 beta(t) (x + score(x, t)) (Song et al. 2021, eq. 13; see
samplers.pf_ode_drift, solved as samplers.pf_ode_drift_rho) moves data to noise deterministically
and invertibly, so the instantaneous change of variables (Chen et al. 2018, theorem 1) gives the density exactly:

    d log p_t(x(t)) / dt = -div f(x(t), t)
    log p_0(x(0)) = log p_T(x(T)) + integral_0^T div f(x(t), t) dt           (Song et al. 2021, eq. 39)

with p_T = N(0, I). We integrate the pair [x, integral of div f] from t_min to T with an adaptive
solver. div f = -1/2 beta(t) (D + div score) is computed exactly by autograd (one backward pass
per dimension: right for 2D points) or estimated by Hutchinson's trace estimator
E_v[v^T (df/dx) v] with Rademacher or Gaussian probes v (right for images; Grathwohl et al. 2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .samplers import pf_ode_drift_rho, rho_of_t
from .schedules import Schedule

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
DATA_KINDS = ("continuous", "image8bit")
METHODS = ("dopri5", "bosh3", "adaptive_heun", "dopri8")


@dataclass
class LikelihoodResult:
    """The ODE log-likelihood of a batch; every tensor (B,), nats unless named otherwise."""

    log_px: torch.Tensor  # log p(x) of the (dequantized) point in the model's space, nats
    bits_per_dim: torch.Tensor  # -log-likelihood per dimension in bits (8-bit: of the pixel values)
    nfe: int  # number of ODE function evaluations (each one model call plus its divergence)
    x_T: torch.Tensor  # (B, ...) where the ODE carried x (the latent code)
    prior_logp: torch.Tensor  # log N(x_T; 0, I)
    delta_logp: torch.Tensor  # integral from t_min to T of div f dt


def standard_normal_logp(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per example, summed over dimensions: -D/2 log(2 pi) - |z|^2 / 2."""
    flat = z.reshape(z.shape[0], -1)
    return -0.5 * flat.shape[1] * math.log(2 * math.pi) - 0.5 * (flat**2).sum(1)


def divergence_exact(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """div f = sum_i d f_i / d x_i per example, by one autograd pass per dimension (f built from x)."""
    ff, D = f.reshape(f.shape[0], -1), f[0].numel()
    div = torch.zeros(f.shape[0], dtype=f.dtype, device=f.device)
    for i in range(D):
        g = torch.autograd.grad(ff[:, i].sum(), x, retain_graph=True)[0]
        div = div + g.reshape(g.shape[0], -1)[:, i]
    return div


def divergence_hutchinson(f: torch.Tensor, x: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """Hutchinson's estimate mean_k v_k^T (df/dx) v_k, unbiased when E[v v^T] = I (Hutchinson 1989).

    probes: (K, B, ...) fixed probe vectors v_k shaped like x.
    """
    est = torch.zeros(f.shape[0], dtype=f.dtype, device=f.device)
    for k in range(probes.shape[0]):
        v = probes[k]
        jtv = torch.autograd.grad((f * v).sum(), x, retain_graph=True)[0]  # v^T J, per example
        est = est + (jtv * v).reshape(v.shape[0], -1).sum(1)
    return est / probes.shape[0]


def make_probes(x: torch.Tensor, n_probes: int, kind: str, generator=None) -> torch.Tensor:
    """(n_probes, B, ...) probes with E[v v^T] = I: Rademacher (+-1) or standard Gaussian."""
    shape = (n_probes, *x.shape)
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    bits = torch.randint(0, 2, shape, generator=generator, device=x.device)
    return (2 * bits - 1).to(x.dtype)


def dequantize_8bit(x0: torch.Tensor, generator=None) -> torch.Tensor:
    """Uniform dequantization of 8-bit data scaled to [-1, 1] (values k / 127.5 - 1):
    x = x0 + u / 127.5 with u ~ U(-1/2, 1/2), a point spread uniformly over the value's bin of width 2/255."""
    u = torch.rand(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) - 0.5
    return x0 + u / 127.5


def ode_log_likelihood(
    model,
    s: Schedule,
    x0: torch.Tensor,
    *,
    y=None,
    method="dopri5",
    rtol=1e-5,
    atol=1e-5,
    t_min=1e-3,
    divergence="exact",
    n_probes=1,
    probe="rademacher",
    data_kind="continuous",
    generator=None,
    progress=None,
) -> LikelihoodResult:
    """log p(x0) under the model's probability-flow ODE (Song et al. 2021, appendix D.2).

    Integrates [x, delta] with dx/dt = f(x, t), d delta/dt = div f(x, t) from t = t_min to T
    (torchdiffeq.odeint, adaptive `method`, rtol/atol), in the time variable rho = -log abar(t)
    where the drift has no jumps (see samplers.pf_ode_drift_rho; delta is the same integral), then
        log p(x0) = log N(x_T; 0, I) + delta(T).
    t_min > 0 (default 1e-3) avoids the singular score at t = 0; it measures the density of the
    marginal at t_min, which differs from that of the data by O(1 - abar(t_min)) (1e-7 for the
    linear schedule).
    divergence: "exact" (autograd, one pass per dimension) or "hutchinson" (n_probes probes of
        kind `probe`, drawn once and held fixed along the path so the ODE stays deterministic).
    data_kind: "continuous" -> bits/dim = -log p(x0) / (D ln 2).
        "image8bit" (x0 on the grid k / 127.5 - 1 in [-1, 1]): uniform dequantization
        x = x0 + u / 127.5, u ~ U(-1/2, 1/2)^D, and the change of scale to pixel units
        (x = k / 127.5 - 1 has Jacobian 1 / 127.5 per dimension) gives the bound
            bits/dim = -(log p(x) + D log(1 / 127.5)) / (D ln 2)
        on the discrete data's negative log-likelihood (Theis et al. 2016; Ho et al. 2020, sec. 4.2).
        log_px is then log p(x) of the dequantized point, in the model's [-1, 1] space.
    progress: optional callable(done, total) called at each function evaluation; done / total is
        the fraction of the way from t_min to T (in rho), total = 1.
    """
    from torchdiffeq import odeint

    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}; got {divergence!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}; got {probe!r}")
    if data_kind not in DATA_KINDS:
        raise ValueError(f"data_kind must be one of {DATA_KINDS}; got {data_kind!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of the adaptive solvers {METHODS}; got {method!r}")
    if not 0 < float(t_min) < s.T:
        raise ValueError(f"t_min must lie strictly between 0 and T = {s.T}; got {t_min!r}")
    if isinstance(n_probes, bool) or int(n_probes) != n_probes or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer; got {n_probes!r}")
    if not torch.is_tensor(x0) or x0.ndim < 2:
        raise ValueError("x0 must be a tensor shaped (B, ...): (B, D) points or (B, C, H, W) images")
    x = dequantize_8bit(x0, generator) if data_kind == "image8bit" else x0
    probes = make_probes(x, int(n_probes), probe, generator) if divergence == "hutchinson" else None
    nfe = [0]

    lo, hi = float(rho_of_t(s, float(t_min))), float(rho_of_t(s, float(s.T)))

    def func(rho, state):
        x_t = state[0]
        nfe[0] += 1
        if progress is not None:
            progress(min(max((float(rho) - lo) / (hi - lo), 0.0), 1.0), 1.0)
        with torch.enable_grad():
            xg = x_t.detach().requires_grad_(True)
            # torchdiffeq may probe times outside [t_min, T] (initial-step trial, overshoot): hold f there
            f, eps = pf_ode_drift_rho(model, s, xg, rho.detach().to(torch.float64).clamp(lo, hi), y)
            if not eps.requires_grad:
                raise ValueError(
                    "the model's output is detached from its input x (no autograd graph); "
                    "the divergence needs a model differentiable in x"
                )
            if divergence == "exact":
                div = divergence_exact(f, xg)
            else:
                div = divergence_hutchinson(f, xg, probes)
        return f.detach(), div.detach()

    state0 = (x.detach(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    times = torch.tensor([lo, hi], dtype=x.dtype, device=x.device)  # in rho = -log abar(t)
    xs, deltas = odeint(func, state0, times, rtol=float(rtol), atol=float(atol), method=method)
    x_T, delta = xs[-1], deltas[-1]
    prior = standard_normal_logp(x_T)
    log_px = prior + delta
    D = x[0].numel()
    log_lik = log_px + D * math.log(1 / 127.5) if data_kind == "image8bit" else log_px
    return LikelihoodResult(
        log_px=log_px,
        bits_per_dim=-log_lik / (D * math.log(2.0)),
        nfe=nfe[0],
        x_T=x_T,
        prior_logp=prior,
        delta_logp=delta,
    )
