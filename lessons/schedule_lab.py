"""Lesson 2 — the schedule lab: how beta_t decides how fast the signal fades.

Curves of beta_t, alpha-bar_t, sqrt(alpha-bar_t) (the signal left), sqrt(1 - alpha-bar_t) (the
noise) and log-SNR_t = log(alpha-bar_t / (1 - alpha-bar_t)) for the linear (Ho et al. 2020),
cosine (Nichol & Dhariwal 2021, eq. 17) and sigmoid schedules; two schedules on the same
digit with the same noise. No streamlit here.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch

from toy_models.diffusion import q_sample
from toy_models.schedules import Schedule

from .figures import (
    COLORS,
    SCHEDULE_COLORS,
    compact,
    fast_figure,
    finite,
    heatmap_dict,
    layout_dict,
    panel_axes,
    panels,
)

INTRO = (
    "A schedule decides how fast the signal fades. Move **t** and the schedule settings in the sidebar: "
    "every curve below is recomputed from `make_schedule`. The dashed line marks your t; the numbers "
    "above the figure say how much signal is left."
)
NARRATIVE_TERMS = """
A schedule is only a list of step variances β_1 … β_T, but what the model sees at time t is their
running product ᾱ_t. **sqrt(ᾱ_t)** is the fraction of the clean signal still in x_t;
**sqrt(1 − ᾱ_t)** is the noise's standard deviation. Their ratio squared is the signal-to-noise
ratio SNR_t; its logarithm (log-SNR) falls from large positive (almost clean) to large negative
(almost pure noise).
"""
EQ_ABAR = r"\bar\alpha_t = \prod_{s=1}^{t}(1-\beta_s),\qquad \mathrm{SNR}_t = \frac{\bar\alpha_t}{1-\bar\alpha_t}"
EQ_COSINE = (
    r"\bar\alpha_t = \frac{f(t)}{f(0)},\quad f(t) = \cos^2\!\left(\frac{t/T + \delta}{1+\delta}\cdot"
    r"\frac{\pi}{2}\right)"
)
EQ_COSINE_NOTE = (
    "The cosine schedule (Nichol & Dhariwal 2021, eq. 17, where the offset δ is called s); "
    "β_t = 1 − ᾱ_t / ᾱ_{t−1}, at most 0.999."
)
SECTION_DIGITS = (
    "**The same digit, the same noise, the same t**: only the schedule differs, so any difference you "
    "see is the schedule's doing. Choose the two schedules."
)
LOOK_DIGITS = (
    "Look for: the digit you can still read is the one whose schedule has left more signal (sqrt(ᾱ_t) in each title)."
)
NOISE_FLOOR = 0.01  # abar_t below this: less than a tenth of the signal's amplitude is left ("nearly pure noise")

# The quantities plotted, in order: (attribute / key, axis label).
QUANTITIES = (  # (key of schedule_curves, panel title); each panel's y axis is titled with the symbol before ":"
    ("beta", "β_t"),
    ("abar", "ᾱ_t"),
    ("sqrt_abar", "sqrt(ᾱ_t): signal left"),
    ("sqrt_one_minus_abar", "sqrt(1 − ᾱ_t): noise sd"),
    ("log_snr", "log-SNR_t"),
)
LOG_SNR_CLIP = 30.0  # log-SNR is +inf at t = 0 and -inf when abar underflows; plotted clipped to +-30


def schedule_curves(s: Schedule) -> dict[str, np.ndarray]:
    """The plotted tables of a schedule for t = 0..T, all finite (log-SNR clipped to +-LOG_SNR_CLIP)."""
    return {
        "t": np.arange(s.T + 1),
        "beta": s.betas.numpy(),
        "abar": s.alphas_cumprod.numpy(),
        "sqrt_abar": s.sqrt_alphas_cumprod.numpy(),
        "sqrt_one_minus_abar": s.sqrt_one_minus_alphas_cumprod.numpy(),
        "log_snr": finite(s.log_snr.numpy(), -LOG_SNR_CLIP, LOG_SNR_CLIP),
    }


def schedule_arrays(schedules: dict[str, Schedule]) -> dict[str, np.ndarray]:
    """Every schedule's tables for an export: t (T+1,), and for each schedule NAME the arrays NAME_beta,
    NAME_abar, NAME_sqrt_abar, NAME_sqrt_one_minus_abar, NAME_log_snr (float64, exact: log-SNR keeps its
    +inf at t = 0) and NAME_describe (the schedule's parameters, as text)."""
    out = {"t": np.arange(next(iter(schedules.values())).T + 1)}
    for name, s in schedules.items():
        curves = {**schedule_curves(s), "log_snr": s.log_snr.numpy()}  # the plotted tables, log-SNR unclipped
        out.update({f"{name}_{key}": curves[key] for key, _ in QUANTITIES})
        out[f"{name}_describe"] = np.array(s.describe())
    return out


def signal_left(s: Schedule, t: int) -> dict[str, float]:
    """What is left at time t: sqrt(abar_t), sqrt(1 - abar_t), abar_t and log-SNR_t (clipped)."""
    if not (0 <= int(t) <= s.T):
        raise ValueError(f"t must lie in 0..T={s.T}; got {t}")
    abar = float(s.alphas_cumprod[t])
    return {
        "abar": abar,
        "signal": math.sqrt(abar),
        "noise": math.sqrt(1.0 - abar),
        "log_snr": float(finite(s.log_snr[t].item(), -LOG_SNR_CLIP, LOG_SNR_CLIP)),
    }


def schedule_facts(s: Schedule) -> dict:
    """Where a schedule spends its steps: t_half, the first t with abar_t <= 1/2 (None if it never gets there),
    and noise_share, the share of its T steps with abar_t < NOISE_FLOOR (nearly pure noise)."""
    a = s.alphas_cumprod.numpy()
    below = np.flatnonzero(a <= 0.5)
    return {"t_half": int(below[0]) if below.size else None, "noise_share": float((a[1:] < NOISE_FLOOR).mean())}


def _t_half_text(facts: dict) -> str:
    return "never" if facts["t_half"] is None else f"t = {facts['t_half']}"


def narrative(T: int) -> str:
    """Where each schedule spends its steps, with the numbers of the sidebar's default schedules at this T."""
    from .settings import SCHEDULES, FrameState, build_schedule

    f = {name: schedule_facts(build_schedule(FrameState(T=T), name)) for name in SCHEDULES}
    return (
        f"**Where each schedule spends its steps** (the default settings at T = {T}). The linear schedule of "
        f"Ho et al. (2020) takes the signal away fast: ᾱ_t is down to 1/2 at {_t_half_text(f['linear'])}, and "
        f"{f['linear']['noise_share']:.0%} of its steps have ᾱ_t < {NOISE_FLOOR:g}, less than a tenth of the "
        "signal's amplitude left. Nichol & Dhariwal (2021, §3.2) found that these nearly pure-noise steps at the "
        "end add little to sample quality, and designed the cosine schedule so that ᾱ_t falls nearly linearly "
        "in the middle and changes little near t = 0 and t = T: it is down to 1/2 at "
        f"{_t_half_text(f['cosine'])}, and {f['cosine']['noise_share']:.0%} of its steps have ᾱ_t < "
        f"{NOISE_FLOOR:g}. Its offset δ keeps β_t from being tiny near t = 0, and each β_t is clipped at 0.999, "
        "since at t = T the formula gives β_T = 1. The sigmoid schedule's β_t follows an S-curve from β_1 to β_T, "
        "flat at "
        f"both ends: ᾱ_t is down to 1/2 at {_t_half_text(f['sigmoid'])}."
    )


def look_for(schedules: dict[str, Schedule]) -> list[str]:
    """One sentence per panel of fig_schedules (in QUANTITIES order): what to look for, with the numbers of
    the schedules drawn."""
    halves = ", ".join(f"{name} at {_t_half_text(schedule_facts(s))}" for name, s in schedules.items())
    T = next(iter(schedules.values())).T
    return [
        "**β_t**, the noise each step adds: the linear schedule is a straight line from β_1 to β_T, the sigmoid "
        "an S-curve between them, and the cosine stays small until it shoots up to its 0.999 clip in the last "
        "steps.",
        f"**ᾱ_t**, the share of the signal's variance left: see where each curve falls to 1/2 ({halves}; T = {T}).",
        "**sqrt(ᾱ_t)**, the signal's amplitude: the arrow reads your schedule's value at your t.",
        "**sqrt(1 − ᾱ_t)**, the noise's standard deviation: the mirror image of the panel above, since "
        "signal² + noise² = 1 at every t.",
        "**log-SNR_t**: it crosses 0 where the signal and noise variances are equal (where ᾱ_t = 1/2); the "
        "cosine curve is nearly straight through the middle and steep only near t = 0 and t = T. The plot clips "
        f"it to ±{LOG_SNR_CLIP:g}.",
    ]


TRY_T = 100  # the prompt's smaller T: a tenth of the default's steps


def try_this_numbers() -> dict:
    """Every number the lab's try-this prompt quotes: signal, noise and SNR at t = T/2 for the default linear and
    cosine schedules at the default T and at TRY_T (lessons.settings.build_schedule, the sidebar's own schedules)."""
    from .settings import DEFAULT, FrameState, build_schedule

    out = {}
    for T in (DEFAULT.T, TRY_T):
        for name in ("linear", "cosine"):
            s = build_schedule(FrameState(T=T), name)
            left = signal_left(s, T // 2)
            out[(name, T)] = {**left, "t": T // 2, "snr": left["abar"] / (1 - left["abar"])}
    return out


def try_this() -> str:
    """The lab's try-this prompt, with its numbers from try_this_numbers."""
    n = try_this_numbers()
    T = max(T for _, T in n)
    lin, cos = n[("linear", T)], n[("cosine", T)]
    lin_s, cos_s = n[("linear", TRY_T)], n[("cosine", TRY_T)]
    return (
        f"**Try this:** with the default settings (T = {T}), at t = T/2 = {lin['t']} (where the slider starts), "
        f"compare linear and cosine on the digit. The linear schedule has left sqrt(ᾱ_t) = {lin['signal']:.2f} of "
        f"the signal under "
        f"noise of sd {lin['noise']:.2f} (SNR {lin['snr']:.2g}): the digit is hard to make out. The cosine one has "
        f"left {cos['signal']:.2f} under noise of sd {cos['noise']:.2f} (SNR {cos['snr']:.2g}): it is still readable. "
        f"Then set T = {TRY_T}, a tenth of the steps (and of the network evaluations when sampling), and t = "
        f"{lin_s['t']}: the β's scale with 1000/T, so the picture barely changes: ᾱ_t = {lin_s['abar']:.2g} for "
        f"linear (against {lin['abar']:.2g}) and {cos_s['abar']:.3g} for cosine (against {cos['abar']:.3g})."
    )


def fig_schedules(schedules: dict[str, Schedule], t: int, selected: str) -> go.Figure:
    """The five curves of each schedule stacked in panels over t, t marked by a dashed line in each.

    schedules: name -> Schedule (all with the same T); selected: the sidebar's schedule (drawn thick).
    Rebuilt on every move of t, so built from plain dicts (figures.fast_figure).
    """
    n = len(QUANTITIES)
    traces = []
    for name, s in schedules.items():
        c = schedule_curves(s)
        step = max(1, len(c["t"]) // 400)  # at most ~400 points per curve
        idx = np.r_[np.arange(0, len(c["t"]), step), len(c["t"]) - 1]
        traces += [
            dict(
                type="scatter",
                x=c["t"][idx],
                y=compact(c[key][idx], 6),
                mode="lines",
                name=name,
                legendgroup=name,
                showlegend=row == 0,
                **panel_axes(row),
                line=dict(color=SCHEDULE_COLORS[name], width=3 if name == selected else 1.5),
            )
            for row, (key, _) in enumerate(QUANTITIES)
        ]
    lay = layout_dict(f"Schedules at T = {next(iter(schedules.values())).T}; dashed: t = {t}", height=900)
    lay.update(panels(n, [label for _, label in QUANTITIES], gap=0.03, vertical=True))
    lay[f"xaxis{n}"]["title"] = {"text": "t"}
    for row, (_, label) in enumerate(QUANTITIES):
        lay[panel_axes(row)["yaxis"].replace("y", "yaxis")]["title"] = {"text": label.split(":")[0]}
    lay["shapes"] = [
        dict(
            type="line",
            x0=t,
            x1=t,
            xref=panel_axes(row)["xaxis"],
            y0=0,
            y1=1,
            yref=f"{panel_axes(row)['yaxis']} domain",
            line=dict(color=COLORS["marker"], dash="dash"),
        )
        for row in range(n)
    ]
    sel = signal_left(schedules[selected], t)
    lay["annotations"].append(
        dict(
            x=t,
            y=sel["signal"],
            xref="x3",
            yref="y3",
            text=f"{sel['signal']:.3f} of the signal left",
            showarrow=True,
            arrowhead=2,
            bgcolor="white",
        )
    )
    return fast_figure(traces, lay)


def same_digit_two_schedules(
    img: torch.Tensor, s_a: Schedule, s_b: Schedule, t: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The same digit (1, 28, 28) noised to time t by two schedules with the SAME noise (eq. 4)."""
    g = torch.Generator().manual_seed(int(seed))
    x0 = img.to(torch.float64).unsqueeze(0)  # (1, 1, 28, 28)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return (q_sample(s_a, x0, t, noise=eps)[0, 0].numpy(), q_sample(s_b, x0, t, noise=eps)[0, 0].numpy())


def fig_two_digits(
    img_a: np.ndarray, img_b: np.ndarray, name_a: str, name_b: str, t: int, signal_a: float, signal_b: float
) -> go.Figure:
    """Two noisy versions of one digit side by side, titled with the signal left."""
    lay = layout_dict(f"The same digit and the same noise at t = {t}", height=360)
    lay.update(panels(2, [f"{name_a}: sqrt(ᾱ_t) = {signal_a:.3f}", f"{name_b}: sqrt(ᾱ_t) = {signal_b:.3f}"], gap=0.04))
    for j in range(2):
        ax = panel_axes(j)
        lay[ax["xaxis"].replace("x", "xaxis")]["visible"] = False
        lay[ax["yaxis"].replace("y", "yaxis")].update(visible=False, scaleanchor=ax["xaxis"])
    return fast_figure(
        [heatmap_dict(img_a, name=name_a, **panel_axes(0)), heatmap_dict(img_b, name=name_b, **panel_axes(1))], lay
    )
