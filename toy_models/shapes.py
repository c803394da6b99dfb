"""One broadcasting helper for the whole project.

A per-timestep coefficient (one number per t) has to multiply a batch of points (B, 2) or
images (B, 1, 28, 28) alike. `extract` picks the coefficient for each example's t and
reshapes it to (B, 1, ..., 1) so that ordinary broadcasting does the rest.
"""

from __future__ import annotations

import torch


def as_timesteps(t, batch: int, device=None, dtype=None) -> torch.Tensor:
    """Turn an int, a float, a 0-d tensor or a (B,) tensor into a (B,) tensor of times (of dtype, if given).

    A scalar becomes an expanded view (stride 0), which tells a model that the whole batch shares one t
    without comparing B entries (`shares_one_t`). Fails with a clear message when a (B,) tensor does not
    match the batch size.
    """
    if not torch.is_tensor(t):
        t = torch.tensor(t, dtype=dtype)
    elif dtype is not None:
        t = t.to(dtype)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(
            f"t must be a scalar or a 1-D tensor with one entry per example "
            f"(batch size {batch}); got shape {tuple(t.shape)}"
        )
    return t.to(device) if device is not None else t


def shares_one_t(t: torch.Tensor) -> bool:
    """True when every entry of the (B,) tensor t is the same time: an expanded scalar (as_timesteps makes
    one from an int), a single entry, or entries that compare equal."""
    return t.numel() <= 1 or t.stride(0) == 0 or bool((t == t[0]).all())


def extract(coef: torch.Tensor, t, x: torch.Tensor) -> torch.Tensor:
    """coef[t] for each example, shaped (B, 1, ..., 1) to broadcast against x ((1, ..., 1) for an int t).

    coef: (T + 1,) float64 table indexed by the integer time t (see schedules.py).
    t:    int or (B,) integer tensor, with B == x.shape[0].
    x:    (B, ...) the tensor the result will multiply; its dtype and device are used.
    """
    if x.ndim < 1:
        raise ValueError("x must have a batch dimension: shape (B, ...)")
    if isinstance(t, int) and not isinstance(t, bool):  # one t for the whole batch (the samplers)
        if not 0 <= t < coef.shape[0]:
            raise ValueError(f"timesteps must lie in 0..{coef.shape[0] - 1}; got {t}")
        return coef[t].to(device=x.device, dtype=x.dtype).reshape([1] * x.ndim)
    t = as_timesteps(t, x.shape[0])
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError("extract needs integer timesteps; use Schedule.alpha_bar(t) for fractional t")
        t = t.long()
    if t.min() < 0 or t.max() >= coef.shape[0]:
        raise ValueError(f"timesteps must lie in 0..{coef.shape[0] - 1}; got {t.min().item()}..{t.max().item()}")
    out = coef.to(x.device)[t.to(x.device)]
    return out.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def check_int(name: str, value, lo: int, hi: int | None = None, hi_name: str = "") -> int:
    """value as an int in lo..hi (no upper end when hi is None), else a ValueError that names it, e.g.
    "steps must be an integer from 1 to T = 50; got 2.5". Booleans and non-numbers are refused too."""
    try:
        v = None if isinstance(value, bool) or not float(value).is_integer() else int(value)
    except (TypeError, ValueError, OverflowError):
        v = None
    if v is None or v < lo or (hi is not None and v > hi):
        top = "" if hi is None else f" to {hi_name + ' = ' if hi_name else ''}{hi}"
        raise ValueError(f"{name} must be an integer from {lo}{top}; got {value!r}")
    return v


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) with ndim dimensions in all."""
    if v.ndim > ndim:
        raise ValueError(f"cannot append dims: input has {v.ndim} dims, target {ndim}")
    return v.reshape(*v.shape, *([1] * (ndim - v.ndim)))
