"""Variance schedules beta_1..beta_T and every coefficient derived from them.

INDEXING (stated once for the whole project). The paper's time index t runs 1..T, as in
Ho et al. (2020). Every per-step table on a `Schedule` has length T + 1 and is indexed by t
itself; entry 0 stands for t = 0, the clean data (beta_0 = 0, alpha_0 = alpha_bar_0 = 1).
So `s.alphas_cumprod[t]` is alpha-bar_t, and `s.betas[1:]` are the T betas of the paper.

All tables are float64 torch tensors; `shapes.extract` casts them to the data's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .shapes import check_int

SCHEDULE_NAMES = ("linear", "cosine", "sigmoid", "custom")
MAX_T = 100_000  # a guard against typing 10^9 into a box; far above anything a lesson needs

# The parameters each schedule accepts, with their defaults.
DEFAULT_PARAMS = {
    "linear": {"beta_start": 1e-4, "beta_end": 0.02},  # Ho et al. (2020), T = 1000
    "cosine": {"s": 0.008, "max_beta": 0.999},  # Nichol & Dhariwal (2021), eq. 17
    "sigmoid": {"beta_start": 1e-4, "beta_end": 0.02, "width": 6.0},  # GeoDiff (Xu et al. 2022)
    "custom": {"betas": None},
}


# How `Schedule.describe` writes each parameter on the pages (the course's symbols).
DISPLAY_NAMES = {"beta_start": "β_start", "beta_end": "β_end", "s": "δ", "max_beta": "max β"}


@dataclass(frozen=True, eq=False)
class Schedule:
    """A noise schedule and its derived coefficients (Ho et al. 2020, sections 2-3)."""

    name: str  # one of SCHEDULE_NAMES
    T: int  # number of diffusion steps
    params: dict = field(default_factory=dict)  # the parameters it was made from
    betas: torch.Tensor = None  # (T+1,) beta_t, the variance added at step t; beta_0 = 0

    def __post_init__(self):
        b = self.betas.to(torch.float64)
        one = torch.ones(1, dtype=torch.float64)
        alphas = 1.0 - b  # alpha_t = 1 - beta_t
        acp = torch.cumprod(alphas, 0)  # alpha-bar_t = prod_{s<=t} alpha_s; acp[0] = 1
        acp_prev = torch.cat([one, acp[:-1]])  # alpha-bar_{t-1}
        one_minus = 1.0 - acp
        # beta-tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)  (Ho et al. eq. 7); 0 at t = 0, 1
        post_var = torch.zeros_like(b)
        post_var[1:] = b[1:] * (1.0 - acp_prev[1:]) / one_minus[1:]
        # log beta-tilde is -inf at t = 1; like improved-diffusion, use beta-tilde_2 there
        # (beta_1 when T = 1).
        clip = post_var.clone()
        clip[0] = clip[1] = post_var[2] if self.T >= 2 else b[1]
        coef1 = torch.zeros_like(b)
        coef2 = torch.zeros_like(b)
        coef1[0] = 1.0  # at t = 0 the "posterior" is x_0 itself
        coef1[1:] = b[1:] * acp_prev[1:].sqrt() / one_minus[1:]
        coef2[1:] = (1.0 - acp_prev[1:]) * alphas[1:].sqrt() / one_minus[1:]
        snr = torch.full_like(b, math.inf)
        snr[1:] = acp[1:] / one_minus[1:]
        tables = dict(
            betas=b,
            log_betas=torch.log(b.clamp(min=1e-300)),  # log beta_t (beta_0 = 0 clamped: a finite table)
            sqrt_betas=b.sqrt(),
            alphas=alphas,
            sqrt_alphas=alphas.sqrt(),
            alphas_cumprod=acp,
            alphas_cumprod_prev=acp_prev,
            sqrt_alphas_cumprod=acp.sqrt(),
            one_minus_alphas_cumprod=one_minus,
            sqrt_one_minus_alphas_cumprod=one_minus.sqrt(),
            log_one_minus_alphas_cumprod=torch.log(one_minus),
            sqrt_recip_alphas_cumprod=(1.0 / acp).sqrt(),
            sqrt_recipm1_alphas_cumprod=(1.0 / acp - 1.0).sqrt(),
            posterior_variance=post_var,
            posterior_log_variance_clipped=torch.log(clip),
            posterior_mean_coef1=coef1,
            posterior_mean_coef2=coef2,
            snr=snr,
            log_snr=torch.log(snr),
        )
        for k, v in tables.items():
            object.__setattr__(self, k, v)

    # -- continuous time, for the probability-flow ODE -------------------------------------
    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """alpha-bar at a real time t in [0, T]: log alpha-bar interpolated linearly.

        Between integers, log alpha-bar(t) moves linearly from log abar_{n-1} to log abar_n,
        so the continuous-time rate beta(t) = -d log abar / dt is the constant -log(alpha_n)
        on (n-1, n] (about beta_n). Equal to the table at integer t.
        """
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.T)
        log_acp = torch.log(self.alphas_cumprod)
        lo = t.floor().long().clamp(max=self.T - 1)
        frac = t - lo
        return torch.exp(log_acp[lo] + frac * (log_acp[lo + 1] - log_acp[lo]))

    def beta_continuous(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t) = -d log alpha-bar(t) / dt for real t in (0, T] (piecewise constant)."""
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.T)
        n = t.ceil().long().clamp(min=1)
        return -torch.log(self.alphas[n])

    def describe(self) -> str:
        """One line naming the schedule as the pages write it, e.g. 'linear (T=1000, β_start=0.0001,
        β_end=0.02)'; the cosine offset s is written δ (the course keeps s for the score)."""
        shown = {DISPLAY_NAMES.get(k, k): v for k, v in self.params.items() if k != "betas"}
        inner = ", ".join([f"T={self.T}"] + [f"{k}={v:g}" for k, v in shown.items()])
        return f"{self.name} ({inner})"


def _check_T(T) -> int:
    return check_int("T", T, 1, MAX_T)


def _check_beta(name: str, v) -> float:
    v = float(v)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must lie strictly between 0 and 1; got {v}")
    return v


def linear_betas(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """beta_t rising linearly from beta_start to beta_end (Ho et al. 2020, section 4)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float, max_beta: float) -> torch.Tensor:
    """Nichol & Dhariwal (2021) eq. 17: abar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2).

    beta_t = 1 - abar_t / abar_{t-1}, clipped at max_beta to avoid the singularity at t = T.
    """
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    acp = f / f[0]
    return (1 - acp[1:] / acp[:-1]).clamp(max=max_beta)


def sigmoid_betas(T: int, beta_start: float, beta_end: float, width: float) -> torch.Tensor:
    """beta_t following a logistic curve from beta_start to beta_end (Xu et al. 2022, GeoDiff).

    width: the curve is sigmoid(u) for u evenly spaced in [-width, width]; larger is steeper.
    """
    u = torch.linspace(-width, width, T, dtype=torch.float64)
    return beta_start + (beta_end - beta_start) * torch.sigmoid(u)


REFERENCE_T = 1000  # the T at which the linear and sigmoid beta ranges of the literature are stated


def beta_range_for_T(
    beta_start: float, beta_end: float, T: int, reference_T: int = REFERENCE_T, max_beta: float = 0.999
) -> tuple[float, float]:
    """The beta range in force at T when (beta_start, beta_end) is stated for `reference_T` steps.

    Each end is scaled by reference_T / T and clipped at max_beta (improved-diffusion's rule for
    the linear schedule, Nichol & Dhariwal 2021). The sum of the betas, and so -log abar_T to first
    order, then stays about the same at every T: T sets how many steps the same journey to noise
    takes, not how far it goes. Ho et al.'s 1e-4..0.02 gives abar_T ~ exp(-10) at every T >= 2.
    """
    scale = reference_T / _check_T(T)
    return min(beta_start * scale, max_beta), min(beta_end * scale, max_beta)


def make_schedule(name: str, T: int, **params) -> Schedule:
    """Build a Schedule by name: "linear", "cosine", "sigmoid", or "custom" (betas=[...]).

    Unknown names or parameters, T outside 1..MAX_T, and betas outside (0, 1) raise
    ValueError saying what is allowed.
    """
    if name not in DEFAULT_PARAMS:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULE_NAMES)}")
    unknown = set(params) - set(DEFAULT_PARAMS[name])
    if unknown:
        valid = ", ".join(DEFAULT_PARAMS[name]) or "none"
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for schedule {name!r}; valid: {valid}")
    p = {**DEFAULT_PARAMS[name], **params}
    if name == "custom":
        if p["betas"] is None:
            raise ValueError("the custom schedule needs betas=[beta_1, ..., beta_T]")
        betas = torch.as_tensor(p["betas"], dtype=torch.float64).flatten()
        if T is None:
            T = betas.numel()
        T = _check_T(T)
        if betas.numel() != T:
            raise ValueError(f"custom schedule: got {betas.numel()} betas for T={T}; give exactly T betas")
        p = {}
    else:
        T = _check_T(T)
        if name == "linear":
            betas = linear_betas(T, _check_beta("beta_start", p["beta_start"]), _check_beta("beta_end", p["beta_end"]))
        elif name == "sigmoid":
            if not float(p["width"]) > 0:
                raise ValueError(f"width must be positive; got {p['width']}")
            betas = sigmoid_betas(
                T, _check_beta("beta_start", p["beta_start"]), _check_beta("beta_end", p["beta_end"]), float(p["width"])
            )
        else:  # cosine
            if not 0 <= float(p["s"]) <= 1:
                raise ValueError(f"s must lie in [0, 1]; got {p['s']}")
            betas = cosine_betas(T, float(p["s"]), _check_beta("max_beta", p["max_beta"]))
        p = {k: float(v) for k, v in p.items()}
    bad = ~((betas > 0) & (betas < 1))
    if bad.any():
        i = int(bad.nonzero()[0]) + 1
        raise ValueError(f"every beta_t must lie strictly between 0 and 1; beta_{i} = {betas[i - 1].item()}")
    return Schedule(name=name, T=T, params=p, betas=torch.cat([torch.zeros(1, dtype=torch.float64), betas]))


def schedule_from_dict(d: dict) -> Schedule:
    """Inverse of `schedule_to_dict` (used by checkpoint sidecars)."""
    return make_schedule(d["name"], d["T"], **d.get("params", {}))


def schedule_to_dict(s: Schedule) -> dict:
    """A JSON-ready description that `schedule_from_dict` rebuilds exactly."""
    params = dict(s.params)
    if s.name == "custom":
        params = {"betas": s.betas[1:].tolist()}
    return {"name": s.name, "T": s.T, "params": params}
