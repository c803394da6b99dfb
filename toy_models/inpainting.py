"""Inpainting: sample the unknown part of x_0 given the known part, with a model that never saw a mask.

The replacement method (Song et al. 2021, "Score-based generative modeling", sec. 5 / app. I.2;
Lugmayr et al. 2022, RePaint, eq. 8-9) wraps a sampler STEP, not a model: at every step the
known pixels of the state are overwritten by a fresh forward draw of the known data at the same
noise level,

    x_{t_next} = m * q_sample(x0_known, t_next) + (1 - m) * step(x_t)        (RePaint eq. 8),

m = 1 where a pixel (or coordinate) is known. At t_next = 0, q_sample returns x0_known itself,
so the known part of the output equals the known data exactly.

Resampling (RePaint sec. 4.2): the unknown part only hears about the known part through the
model, one step at a time, and the two drift apart. With `resample = r > 1` every step is
repeated r times: after the step t -> t_next the state is noised back, x_t ~ q(x_t | x_{t_next})
= N(sqrt(abar_t / abar_next) x_{t_next}, (1 - abar_t / abar_next) I), and stepped again.

The 2D analogue: "know" one coordinate of a point of the Gaussian mixture and sample the other.
For a mixture the exact answer is closed-form (`gmm_condition_on`): conditioning each Gaussian
on x_d = a gives a Gaussian, and the weights become w_k N(a; mu_kd, Sigma_kdd).
"""

from __future__ import annotations

import math

import torch

from .gmm import GaussianMixture
from .samplers import SamplerInfo, SamplerStep, _check_clip, _check_x_T, ddim_step, ddim_timesteps, model_predictions
from .schedules import Schedule
from .shapes import check_int, extract

MAX_RESAMPLE = 20  # a guard: r = 20 already makes a 50-step run 1,000 model calls


def check_mask(mask, x_T: torch.Tensor) -> torch.Tensor:
    """The mask as a float tensor of 0/1 broadcastable to x_T (1 = known). Raises ValueError otherwise."""
    m = torch.as_tensor(mask).to(dtype=x_T.dtype, device=x_T.device)
    try:
        torch.broadcast_shapes(m.shape, x_T.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(m.shape)} does not broadcast to x_T {tuple(x_T.shape)}") from None
    if not ((m == 0) | (m == 1)).all():
        raise ValueError("mask must hold only 0 (unknown) and 1 (known)")
    return m


def replace_known(
    s: Schedule, x: torch.Tensor, mask: torch.Tensor, known: torch.Tensor, t: int, generator=None
) -> torch.Tensor:
    """m * q_sample(known, t) + (1 - m) * x  (RePaint eq. 8): known part re-noised to time t.

    x (B, ...) the sampler's state at time t; mask and known broadcast to it. At t = 0 the known
    part is `known` exactly (sqrt(abar_0) = 1, sqrt(1 - abar_0) = 0).
    """
    known = known.to(x.dtype).expand_as(x)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    noised = extract(s.sqrt_alphas_cumprod, t, x) * known + extract(s.sqrt_one_minus_alphas_cumprod, t, x) * noise
    return torch.where(mask.expand_as(x) > 0, noised, x)


def renoise(s: Schedule, x_next: torch.Tensor, t_next: int, t: int, generator=None) -> torch.Tensor:
    """x_t ~ q(x_t | x_{t_next}) = N(sqrt(abar_t / abar_next) x_next, (1 - abar_t / abar_next) I), t > t_next.

    The forward process run from t_next to t in one jump (Ho et al. eq. 4 between two noise levels;
    RePaint sec. 4.2, "resampling").
    """
    ratio = float(s.alphas_cumprod[t]) / float(s.alphas_cumprod[t_next])
    noise = torch.randn(x_next.shape, generator=generator, dtype=x_next.dtype, device=x_next.device)
    return math.sqrt(ratio) * x_next + math.sqrt(max(1.0 - ratio, 0.0)) * noise


def sample_replacement(
    model,
    s: Schedule,
    x_T,
    *,
    steps=None,
    y=None,
    generator=None,
    callback=None,
    mask=None,
    known=None,
    eta: float = 1.0,
    resample: int = 1,
    clip_x0=None,
    grid: str = "quadratic",
    info: SamplerInfo | None = None,
):
    """Inpainting by replacement with an unconditional (mask-blind) model; the sampler signature of samplers.py.

    The step is DDIM's (Song, Meng & Ermon 2021, eq. 12) on `ddim_timesteps(T, steps, grid)`, the grid
    sample_ddim uses by default; eta = 1 over all
    T steps is DDPM's ancestral step with sigma^2 = beta-tilde. After each step the known part is
    replaced (`replace_known`), and with resample = r each step is redone r times (`renoise`).

    mask: 0/1, broadcastable to x_T, 1 = known. known: the known data x_0 (its values where mask = 0
    are ignored), broadcastable to x_T. mask all 0 is plain sampling; mask all 1 returns `known`.
    The callback sees every step, resampled ones too (SamplerStep.i counts them all).
    """
    _check_x_T(x_T, y)
    if mask is None or known is None:
        raise ValueError("sample_replacement needs mask= (1 = known) and known= (the known x_0)")
    m = check_mask(mask, x_T)
    known = torch.as_tensor(known).to(dtype=x_T.dtype, device=x_T.device)
    try:
        torch.broadcast_shapes(known.shape, x_T.shape)
    except RuntimeError:
        raise ValueError(f"known of shape {tuple(known.shape)} does not broadcast to x_T {tuple(x_T.shape)}") from None
    check_int("resample", resample, 1, MAX_RESAMPLE)
    if not float(eta) >= 0:
        raise ValueError(f"eta must be >= 0; got {eta!r}")
    clip_x0 = _check_clip(clip_x0)
    ts = ddim_timesteps(s.T, steps, grid)
    x = replace_known(s, x_T, m, known, ts[0], generator)
    i = 0
    with torch.no_grad():
        for t, t_next in zip(ts[:-1], ts[1:]):
            for r in range(int(resample)):
                eps, x0 = model_predictions(
                    model, s, x, torch.full((x.shape[0],), float(t), dtype=torch.float64), y, clip_x0
                )
                noise = (
                    torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                    if (eta > 0 and t_next > 0)
                    else None
                )
                x_next, _ = ddim_step(s, x, eps, x0, t, t_next, float(eta), noise)
                x_next = replace_known(s, x_next, m, known, t_next, generator)
                if info is not None:
                    info.nfe += 1
                if callback is not None:
                    callback(SamplerStep(i, float(t), float(t_next), x, eps, x0, x_next))
                i += 1
                last = r == int(resample) - 1 or t_next == 0
                x = x_next if last else renoise(s, x_next, t_next, t, generator)
                if last:
                    break
    if info is not None:
        info.ts.extend(ts)
    return x


# --- the 2D analogue: condition a mixture on one coordinate -----------------------------------------
def gmm_condition_on(gmm: GaussianMixture, dim: int, value: float) -> GaussianMixture:
    """Exact p(x_rest | x_dim = value) of a Gaussian mixture: again a mixture (Bishop 2006, eq. 2.81-2.82).

    Per component: mean mu_r + S_rd / S_dd (a - mu_d), covariance S_rr - S_rd S_dr / S_dd;
    weights proportional to w_k N(a; mu_kd, S_kdd). Returns a GaussianMixture over the other D - 1
    coordinates (in their original order).
    """
    D = gmm.dim
    if not (isinstance(dim, int) and 0 <= dim < D):
        raise ValueError(f"dim must be an integer in 0..{D - 1}; got {dim!r}")
    a = float(value)
    if not math.isfinite(a):
        raise ValueError(f"value must be a finite number; got {value!r}")
    rest = [j for j in range(D) if j != dim]
    S, mu = gmm.covs, gmm.means  # (K, D, D), (K, D)
    s_dd = S[:, dim, dim]  # (K,)
    if (s_dd <= 0).any():
        raise ValueError("a component has zero variance along the conditioned coordinate")
    s_rd = S[:, rest, dim]  # (K, D-1)
    mean = mu[:, rest] + s_rd * ((a - mu[:, dim]) / s_dd)[:, None]  # (K, D-1)
    cov = S[:, rest][:, :, rest] - s_rd[:, :, None] * s_rd[:, None, :] / s_dd[:, None, None]  # (K, D-1, D-1)
    log_w = torch.log(gmm.weights) - 0.5 * ((a - mu[:, dim]) ** 2 / s_dd + torch.log(2 * math.pi * s_dd))
    w = torch.softmax(log_w, 0)
    keep = w > 0
    cov = 0.5 * (cov + cov.transpose(1, 2))
    return GaussianMixture(w[keep], mean[keep], cov[keep])


def coordinate_mask(dim: int, D: int = 2) -> torch.Tensor:
    """(D,) mask with a 1 at the known coordinate `dim` (the 2D analogue of an image mask)."""
    if not (isinstance(dim, int) and 0 <= dim < D):
        raise ValueError(f"dim must be an integer in 0..{D - 1}; got {dim!r}")
    m = torch.zeros(D)
    m[dim] = 1.0
    return m
