"""Lesson 1 — forward noising: data -> noise by small Gaussian steps.

The computations return plain numpy arrays or small dataclasses; the figure builders turn
them into plotly figures. No streamlit here (views/forward.py renders).

Read beside Ho, Jain & Abbeel (2020), eqs. 2 and 4, and toy_models/diffusion.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from toy_models.diffusion import q_chain, q_sample
from toy_models.gmm import kl_mixture_to_gaussian
from toy_models.schedules import Schedule
from toy_models.shapes import check_int

from .figures import (
    COLORS,
    animation_controls,
    compact,
    equal_axes,
    fast_figure,
    finite,
    heatmap_dict,
    layout,
    layout_dict,
    marked_t,
    normal_pdf_line,
    panel_axes,
    panels,
    points,
    scatter2d,
    tile_images,
)

# --- narrative ------------------------------------------------------------------------------------
INTRO = (
    "Drag **t** and watch the data dissolve: each step of the forward process shrinks the points a "
    "little toward the origin and adds a little Gaussian noise. Or open **Play it** further down "
    "and press ▶: the browser runs t from 0 to T."
)
NARRATIVE = """
**One step at a time, and it forgets.** The forward process is a Markov chain: to make x_t you
only need x_{t-1}. You scale it by sqrt(1 − β_t) and add fresh Gaussian noise of variance β_t.
Nothing else about the past matters — not x_0, not how you got here.

**The noise grows.** In the usual schedules the variances grow with t, β_1 < β_2 < … < β_T:
early steps barely touch the data (fine detail survives), late steps are large (by then there
is little left to destroy).

**Where it ends.** Every step multiplies the mean by sqrt(1 − β_t) < 1, so after t steps the
mean has shrunk by sqrt(ᾱ_t) = sqrt(∏(1 − β_s)) toward zero, while the variance climbs to
1 − ᾱ_t. When ᾱ_T ≈ 0, x_T is close to a standard Gaussian whatever x_0 was — a starting point
we can sample without knowing the data.

**Why small steps?** If each step adds only a little noise, the reverse step q(x_{t-1} | x_t)
is itself close to a Gaussian, so a network can learn it one Gaussian at a time. One giant
step would need to undo everything at once — its reverse distribution is nearly the whole data
distribution, as hard as the original problem.
"""
SECTION_XT = (
    "**One jump to any t.** Every step is Gaussian, so x_t can be drawn from x_0 in one go (the closed form "
    "above): shrink x_0 by sqrt(ᾱ_t) and add noise of standard deviation sqrt(1 − ᾱ_t). How close is the "
    "noised data to N(0, I), where sampling will start? The KL divergence below measures it. Move **t**."
)
SECTION_CHAIN = (
    "Small Gaussian steps compose into one Gaussian jump: t Markov steps and the closed form give x_t the same "
    "distribution. Check it: send 1,000 copies of **one** point to time t by t Markov steps (q_chain) and by "
    "one jump (q_sample). Choose t and the point."
)
LOOK_CHAIN = (
    "Look for: the two clouds are centred in the same dotted circle (theory: mean ± 2 sd), and the "
    "table's means and variances agree with the theory row up to sampling noise."
)
SECTION_DIGIT = (
    "**An image is just a long vector.** Each of the 784 pixels of a digit is one coordinate, noised by the "
    "same rule with the same ᾱ_t. Pick a digit and move **t**."
)
LOOK_DIGIT = (
    "Look for: the pixel histogram goes from two spikes (paper at −1, ink near +1) to the N(0, 1) bell as t grows."
)
SECTION_PATHS = (
    "Each line is one chain x_0 → x_1 → … → x_T run step by step (q_chain): a random path, yet its spread at "
    "every t is what the closed form q(x_t | x_0) predicts. Choose how many chains."
)
LOOK_PATHS = (
    "Look for: each chain forgets its start. Its mean sqrt(ᾱ_t) x_0 (dotted) decays to 0 while its "
    "spread grows to 1, and the chain stays mostly inside its band, ± 2 sd of q(x_t | x_0), about 95% "
    "of the mass."
)
EQ_STEP = r"q(x_t \mid x_{t-1}) = \mathcal{N}\!\left(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\right)"
EQ_CLOSED = (
    r"q(x_t \mid x_0) = \mathcal{N}\!\left(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\right),"
    r"\quad \bar\alpha_t = \prod_{s=1}^t (1-\beta_s)"
)
EQ_KL = (
    r"\mathrm{KL}\big(q(x_t)\,\|\,\mathcal{N}(0,I)\big) = \int q(x_t)\,"
    r"\log\frac{q(x_t)}{\mathcal{N}(x_t;0,I)}\,dx_t"
)


# --- computations ------------------------------------------------------------------------------
def noised(s: Schedule, x0: torch.Tensor, t: int, seed: int = 0) -> np.ndarray:
    """x_t ~ q(x_t | x_0) for a batch x0 (B, ...) at integer t in 0..T  (Ho et al. eq. 4)."""
    t = check_t(s, t)
    g = torch.Generator().manual_seed(int(seed))
    x0 = x0.to(torch.float64)
    return q_sample(s, x0, t, noise=torch.randn(x0.shape, generator=g, dtype=torch.float64)).numpy()


def check_t(s: Schedule, t) -> int:
    """t as an int in 0..T, or ValueError."""
    return check_int("t", t, 0, s.T, "T")


def animation_times(T: int, n_frames: int = 24) -> list[int]:
    """At most n_frames distinct integer times from 0 to T, denser at small t (where change is fast).

    Times follow t = T * u^2 for u evenly spaced in [0, 1].
    """
    u = np.linspace(0.0, 1.0, max(2, n_frames))
    return sorted(set(np.round(T * u**2).astype(int).tolist()))


def forward_frames(s: Schedule, x0: torch.Tensor, times: list[int], seed: int = 0) -> np.ndarray:
    """x_t for every t in `times` with ONE noise draw per point: (F, B, 2).

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with the same eps in every frame (eq. 4):
    each frame is an exact sample of q(x_t | x_0) and points glide smoothly between frames.
    """
    g = torch.Generator().manual_seed(int(seed))
    x0 = x0.to(torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return np.stack([q_sample(s, x0, check_t(s, t), noise=eps).numpy() for t in times])


def chain_paths(s: Schedule, x0: torch.Tensor, seed: int = 0, max_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Markov-chain trajectories of a few points x0 (n, D): (ts (K,), xs (K, n, D)).

    Runs q_chain (eq. 2 iterated) keeping about max_points states (always x_0 and x_T).
    """
    g = torch.Generator().manual_seed(int(seed))
    stride = max(1, s.T // max_points)
    ts, xs = q_chain(s, x0.to(torch.float64), stride=stride, generator=g)
    return np.asarray(ts), xs.numpy()


@dataclass
class ChainVsClosed:
    """n copies of ONE point x_0 sent to time t two ways, with their moments."""

    t: int  # the time compared
    x0: np.ndarray  # (D,) the starting point
    chain: np.ndarray  # (n, D) x_t by t Markov steps (q_chain)
    closed: np.ndarray  # (n, D) x_t in one jump (q_sample)
    mean_theory: np.ndarray  # (D,) sqrt(abar_t) x_0
    var_theory: float  # 1 - abar_t, per coordinate

    def moments(self) -> dict[str, dict[str, np.ndarray]]:
        """Empirical mean and variance (per coordinate) of each sample, and the theory."""
        return {
            "Markov chain (q_chain)": {"mean": self.chain.mean(0), "var": self.chain.var(0, ddof=1)},
            "closed form (q_sample)": {"mean": self.closed.mean(0), "var": self.closed.var(0, ddof=1)},
            "theory (eq. 4)": {"mean": self.mean_theory, "var": np.full_like(self.mean_theory, self.var_theory)},
        }


def chain_copies(s: Schedule, x0_point: torch.Tensor, n: int = 1000, seed: int = 0) -> np.ndarray:
    """n copies of ONE point x0_point (D,) run through the whole chain: (T+1, n, D) float32.

    Row t holds x_t after t Markov steps (q_chain with stride 1, eq. 2 iterated).
    """
    x0 = x0_point.to(torch.float64).reshape(1, -1).expand(n, -1).contiguous()  # (n, D)
    g = torch.Generator().manual_seed(int(seed))
    _, xs = q_chain(s, x0, stride=1, generator=g)
    return xs.to(torch.float32).numpy()


def chain_vs_closed(
    s: Schedule, x0_point: torch.Tensor, t: int, n: int = 1000, seed: int = 0, chain: np.ndarray | None = None
) -> ChainVsClosed:
    """Send n copies of x0_point (D,) to time t by the chain (eq. 2, t steps) and by eq. 4.

    chain: optional precomputed `chain_copies(s, x0_point, n, seed)`; its row t is used.
    """
    t = check_t(s, t)
    x0 = x0_point.to(torch.float64).reshape(1, -1).expand(n, -1).contiguous()  # (n, D)
    if chain is not None:
        if chain.shape[:2] != (s.T + 1, n):
            raise ValueError(f"chain must have shape (T+1, n, D) = ({s.T + 1}, {n}, D); got {chain.shape}")
        at_t = chain[t].astype(np.float64)
    elif t == 0:
        at_t = x0.numpy()
    else:  # stride = t keeps x_0, x_t, x_2t, ...: row 1 is x_t
        _, xs = q_chain(_truncated(s, t), x0, stride=t, generator=torch.Generator().manual_seed(int(seed)))
        at_t = xs[1].numpy()
    closed = q_sample(s, x0, t, generator=torch.Generator().manual_seed(int(seed) + 1)).numpy()
    abar = float(s.alphas_cumprod[t])
    x0_np = x0_point.double().numpy()
    return ChainVsClosed(t, x0_np, at_t, closed, math.sqrt(abar) * x0_np, 1.0 - abar)


def _truncated(s: Schedule, t: int) -> Schedule:
    """The same schedule cut at T = t, so the chain does only the t steps needed."""
    return Schedule(name=s.name, T=t, params=s.params, betas=s.betas[: t + 1])


def log_standard_normal(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) for x (N, D), summed over D."""
    return -0.5 * (x**2).sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


def kl_to_standard_normal_grid(log_q, half_width: float, n: int = 201) -> float:
    """KL(q || N(0, I)) for a 2D density by quadrature on an n x n grid over [-h, h]^2, in nats.

    KL = sum_grid q(x) (log q(x) - log N(x; 0, I)) dA; log_q maps (N, 2) float64 -> (N,).
    Accurate when q and N(0, I) both live inside the box and vary slowly on the grid spacing.
    """
    g = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)  # (n*n, 2)
    lq = log_q(pts)
    dA = float(g[1] - g[0]) ** 2
    q = lq.exp()
    return float((q * (lq - log_standard_normal(pts))).sum() * dA)


def gmm_kl_curve(gmm, s: Schedule, times: list[int], nodes: int = 20) -> np.ndarray:
    """Exact KL(q(x_t) || N(0, I)) at each t for a Gaussian-mixture q(x_0), in nats.

    q(x_t) is again a mixture, with means sqrt(abar_t) mu_k and covariances abar_t Sigma_k +
    (1 - abar_t) I (Ho et al. eq. 4; GaussianMixture.noised), and its KL to N(0, I) is
    gmm.kl_mixture_to_gaussian by Gauss-Hermite quadrature in each component's own coordinates, so
    narrow components at small t are resolved.
    """
    zero, eye = torch.zeros(gmm.dim, dtype=torch.float64), torch.eye(gmm.dim, dtype=torch.float64)
    noised = [gmm.noised(float(s.alphas_cumprod[t])) for t in times]
    return np.array([kl_mixture_to_gaussian(q, zero, eye, method="quadrature", nodes=nodes)[0] for q in noised])


def prior_term_curve(gmm, s: Schedule, times: list[int]) -> np.ndarray:
    """E_{x_0 ~ q} KL(q(x_t | x_0) || N(0, I)) at each t for a Gaussian-mixture q(x_0), in nats, exact.

    At t = T this is the prior term L_T of the bound (Ho et al. 2020, eq. 5) averaged over the data
    (toy_models.elbo.prior_kl, on the schedule cut at T = t). Per coordinate that KL is
    (abar x_0^2 - abar - log(1 - abar)) / 2: quadratic in x_0 with no cross terms, so its average over
    x_0 is its value at the root-mean-square point sqrt(E[x_0,d^2]), here from the mixture's moments.
    It exceeds the marginal KL(q(x_t) || N(0, I)) (gmm_kl_curve) by the mutual information I(x_0; x_t).
    At t = 0 it is +inf (q(x_0 | x_0) is a point mass).
    """
    from toy_models.elbo import prior_kl

    w = torch.as_tensor(gmm.weights, dtype=torch.float64)
    mu = torch.as_tensor(gmm.means, dtype=torch.float64)
    cov = torch.as_tensor(gmm.covs, dtype=torch.float64)
    rms = (w @ (torch.diagonal(cov, dim1=-2, dim2=-1) + mu**2)).sqrt()  # (D,) sqrt(E[x_0,d^2])
    return np.array(
        [math.inf if check_t(s, t) == 0 else float(prior_kl(_truncated(s, t), rms[None])[0]) for t in times]
    )


TRY_T = 10  # the T the try-this prompt asks for
TRY_CONSTANT_BETA = 0.01  # its constant schedule: beta_1 = beta_T = 0.01, stated for T = 1000 like the sidebar's


def try_this_numbers(gmm) -> dict[str, float]:
    """Every number the forward page's try-this prompt quotes, read from the schedules the sidebar builds
    (lessons.settings.build_schedule) at the settings the prompt names, and KLs from gmm_kl_curve."""
    from .settings import DEFAULT, FrameState, build_schedule

    short = build_schedule(FrameState(T=TRY_T))
    lin = build_schedule(DEFAULT)
    const = build_schedule(FrameState(beta_1=TRY_CONSTANT_BETA, beta_T=TRY_CONSTANT_BETA))
    t = lin.T // 10
    return {
        "T": short.T,
        "beta_1": float(short.betas[1]),
        "beta_T": float(short.betas[-1]),
        "abar_T": float(short.alphas_cumprod[-1]),
        "step_sd": math.sqrt(float(short.betas[1:].max())),
        "step_sd_default": math.sqrt(float(lin.betas[1:].max())),
        "default_T": lin.T,
        "sum_linear": float(lin.betas.sum()),
        "sum_constant": float(const.betas.sum()),
        "abar_T_linear": float(lin.alphas_cumprod[-1]),
        "abar_T_constant": float(const.alphas_cumprod[-1]),
        "t": t,
        "kl_linear": float(gmm_kl_curve(gmm, lin, [t])[0]),
        "kl_constant": float(gmm_kl_curve(gmm, const, [t])[0]),
    }


def try_this(gmm) -> str:
    """The forward page's try-this prompt, with its numbers from try_this_numbers."""
    n = try_this_numbers(gmm)
    return (
        f"**Try this:** set T = {n['T']} in the sidebar, the rest at its defaults. The β_1 and β_T there are stated "
        f"for T = {n['default_T']} and "
        f"scaled by {n['default_T']}/T, so the same journey to noise now takes {n['T']} steps: β_1 = "
        f"{n['beta_1']:.3g} and β_T = {n['beta_T']:.3g} (scaled, at most 0.999), and still ᾱ_T = {n['abar_T']:.2g}. "
        f"The chains above take visible jumps: the largest step's noise sd sqrt(β_t) is {n['step_sd']:.2f}, "
        f"against {n['step_sd_default']:.2f} at T = {n['default_T']}. Then set T = {n['default_T']} and β_1 = β_T = "
        f"{TRY_CONSTANT_BETA:g}, a constant schedule: its Σβ_t = {n['sum_constant']:.4g} is about the linear "
        f"schedule's {n['sum_linear']:.4g}, so ᾱ_T barely moves ({n['abar_T_constant']:.2g} against "
        f"{n['abar_T_linear']:.2g}), but the noise comes early: at t = {n['t']} the mixture's KL to N(0, I) has "
        f"fallen to {n['kl_constant']:.2g} nats, against {n['kl_linear']:.2g} for the linear schedule."
    )


# --- figures -----------------------------------------------------------------------------------
def fig_xt(x0: np.ndarray, xt: np.ndarray, t: int, abar_t: float, half_width: float = 4.0) -> go.Figure:
    """x_t at time t over the clean data drawn faint behind it, with each coordinate's histogram against the
    N(0, 1) density on the top and right edges: where the cloud is, and how close its marginals are to the
    prior. One figure (plain dicts), so a move of t redraws one plot instead of two.

    Axes: the scatter on (x, y); the histogram of x_1 on (x, y2) above it, of x_2 on (x2, y) beside it.
    """
    split = 0.76  # the scatter's share of the width and the height; the marginals get the rest
    lay = layout_dict(
        f"x_t at t = {t}: signal sqrt(ᾱ_t) = {math.sqrt(abar_t):.3f}, noise sd sqrt(1−ᾱ_t) = "
        f"{math.sqrt(1 - abar_t):.3f}",
        "x₁",
        "x₂",
        height=560,
        fixed_margins=True,
        bargap=0.05,
    )
    lay["xaxis"].update(range=[-half_width, half_width], domain=[0, split])
    lay["yaxis"].update(
        range=[-half_width, half_width], domain=[0, split], scaleanchor="x", scaleratio=1, constrain="range"
    )  # a round cloud looks round; the ranges give, not the panels
    lay["yaxis2"] = {"domain": [split + 0.03, 1], "anchor": "x", "title": {"text": "density"}, "rangemode": "tozero"}
    lay["xaxis2"] = {"domain": [split + 0.03, 1], "anchor": "y", "title": {"text": "density"}, "rangemode": "tozero"}
    top = normal_pdf_line(-half_width, half_width, name="N(0, 1) density", xaxis="x", yaxis="y2")
    bins = {"start": -half_width, "end": half_width, "size": 2 * half_width / 50}
    hist = dict(
        type="histogram",
        histnorm="probability density",
        marker=dict(color=COLORS["x_t"]),
        opacity=0.6,
        showlegend=False,
        hoverinfo="skip",
    )
    xt_c = compact(xt)
    traces = [
        points(x0, "data x_0", "data", 3, 0.25),
        points(xt, f"x_t (t = {t})", "x_t"),
        dict(hist, x=xt_c[:, 0], xbins=bins, xaxis="x", yaxis="y2", name="histogram of x₁"),
        dict(hist, y=xt_c[:, 1], ybins=bins, xaxis="x2", yaxis="y", name="histogram of x₂"),
        top,
        dict(top, x=top["y"], y=top["x"], xaxis="x2", yaxis="y", showlegend=False),  # the same curve, on its side
    ]
    return fast_figure(traces, lay)


def fig_animation(
    x0: np.ndarray, frames: np.ndarray, times: list[int], abar: np.ndarray, half_width: float = 4.0
) -> go.Figure:
    """A plotly animation of x_t over `times` (frames (F, B, 2)), played by the browser.

    abar: (F,) alpha-bar at each frame time, shown in the frame title.
    """
    base = scatter2d(x0, "data x_0", "data", 3, 0.25)
    first = scatter2d(frames[0], "x_t", "x_t")
    fig = go.Figure([base, first])
    fig.frames = [
        go.Frame(
            data=[scatter2d(f, "x_t", "x_t")],
            traces=[1],
            name=str(t),
            layout=dict(title_text=f"t = {t}, sqrt(ᾱ_t) = {math.sqrt(a):.3f}"),
        )
        for f, t, a in zip(frames, times, abar)
    ]
    layout(fig, f"t = {times[0]}", "x₁", "x₂", height=520)
    animation_controls(fig, [str(t) for t in times], duration_ms=120)
    return equal_axes(fig, half_width)


def fig_trajectories(ts: np.ndarray, xs: np.ndarray, abar: np.ndarray, x0: np.ndarray | None = None) -> go.Figure:
    """Markov-chain paths of a few points: first coordinate against t, with the closed-form band.

    ts (K,), xs (K, n, D), abar (K,) alpha-bar at ts. The band is sqrt(abar_t) x_0 +- 2 sqrt(1 - abar_t)
    for each path's own x_0 (Ho et al. eq. 4): about 95% of chains stay inside it.
    """
    fig = go.Figure()
    sa, sn = np.sqrt(abar), np.sqrt(1 - abar)
    for i in range(xs.shape[1]):
        m = sa * xs[0, i, 0]
        show = i == 0
        fig.add_trace(
            go.Scatter(
                x=np.r_[ts, ts[::-1]],
                y=compact(np.r_[m + 2 * sn, (m - 2 * sn)[::-1]]),
                fill="toself",
                line=dict(width=0),
                fillcolor="rgba(44,160,44,0.08)",
                name="±2 sd of q(x_t | x_0)",
                showlegend=show,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=compact(m),
                mode="lines",
                line=dict(color=COLORS["truth"], dash="dot"),
                name="mean sqrt(ᾱ_t) x_0",
                showlegend=show,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=compact(xs[:, i, 0]),
                mode="lines",
                line=dict(color=COLORS["x_t"], width=1.5),
                name="one Markov chain",
                showlegend=show,
            )
        )
    return layout(fig, "Markov-chain paths (first coordinate) inside the closed-form band", "t", "x₁ of x_t")


def fig_kl_curve(times: list[int], kl: np.ndarray, t: int, prior: np.ndarray | None = None) -> go.Figure:
    """KL(q(x_t) || N(0, I)) against t on a log axis, the chosen t marked.

    prior: optionally E_{x_0} KL(q(x_t | x_0) || N(0, I)) at the same times (prior_term_curve), drawn dashed:
    at t = T it is the bound's prior term L_T; the gap between the two curves is I(x_0; x_t).
    """

    def line(values, name, **style):
        ok = np.isfinite(values) & (values > 0)
        return dict(type="scatter", x=np.asarray(times)[ok], y=values[ok], mode="lines", name=name, line=style)

    traces = [dict(line(kl, "KL(q(x_t) ‖ N(0, I))", color=COLORS["truth"]), mode="lines+markers")]
    if prior is not None:
        traces.append(
            line(
                prior, "average over x_0 of KL(q(x_t | x_0) ‖ N(0, I)); at t = T: L_T", color=COLORS["x_t"], dash="dash"
            )
        )
    lay = layout_dict(
        "How far q(x_t) is from N(0, I)", "t", "KL  [nats]", height=380, fixed_margins=True, legend_below=True
    )
    lay["yaxis"]["type"] = "log"
    lay.update(marked_t(t))
    return fast_figure(traces, lay)


def fig_chain_vs_closed(r: ChainVsClosed, n_drawn: int = 400) -> go.Figure:
    """The two samples of x_t side by side, same axes, with the start point and the theory mean.

    The first n_drawn copies of each sample are drawn (the moments come from all of them): the copies are
    independent, so that is a fair picture, and each SVG marker costs the browser on every move of t."""
    sd = math.sqrt(max(r.var_theory, 1e-12))
    th = np.linspace(0, 2 * np.pi, 90)
    traces = []
    for j, (x, role) in enumerate(((r.chain, "learned"), (r.closed, "x_t"))):
        ax = panel_axes(j)
        traces += [
            points(x[:n_drawn], role, role, 3, 0.5, showlegend=False, **ax),
            dict(
                type="scatter",
                x=[r.x0[0]],
                y=[r.x0[1]],
                mode="markers",
                name="x_0",
                showlegend=j == 0,
                marker=dict(size=12, symbol="x", color=COLORS["data"]),
                **ax,
            ),
            dict(
                type="scatter",
                x=compact(r.mean_theory[0] + 2 * sd * np.cos(th)),
                y=compact(r.mean_theory[1] + 2 * sd * np.sin(th)),
                mode="lines",
                name="theory: mean ± 2 sd",
                line=dict(color=COLORS["truth"], dash="dot"),
                showlegend=j == 0,
                **ax,
            ),
        ]
    h = max(3.0, float(np.abs(r.x0).max()) + 0.5)
    lay = layout_dict(f"Same distribution, two routes: x_t at t = {r.t}", height=440, legend_below=True)
    drawn = f" ({n_drawn:,} of {len(r.chain):,} copies drawn)" if len(r.chain) > n_drawn else ""
    lay.update(
        panels(2, [f"{r.t} Markov steps (q_chain){drawn}", f"one jump (q_sample){drawn}"], gap=0.04, share_y=True)
    )
    for name in ("xaxis", "xaxis2", "yaxis", "yaxis2"):
        lay[name]["range"] = [-h, h]
    lay["xaxis"]["title"] = lay["xaxis2"]["title"] = {"text": "x₁ of x_t"}
    lay["yaxis"]["title"] = {"text": "x₂ of x_t"}  # the second panel shares it
    return fast_figure(traces, lay)


def fig_digit_row(images: np.ndarray, times: list[int], pad: int = 2) -> go.Figure:
    """One digit at a row of times: images (K, 28, 28) in [-1, 1], tiled into one heatmap (one plot to draw,
    not K), each labelled with its t below."""
    tiles = tile_images(images, cols=len(times), pad=pad)  # (28 + pad, K (28 + pad))
    width = images.shape[-1] + pad
    lay = layout_dict("The same digit and the same noise, further along the chain", height=230)
    lay["xaxis"] = {
        "tickvals": [j * width + (width - pad - 1) / 2 for j in range(len(times))],
        "ticktext": [f"t = {t}" for t in times],
        "showgrid": False,
        "zeroline": False,
        "ticks": "",
        "title": {"text": "time step t"},
    }
    lay["yaxis"] = {"visible": False, "scaleanchor": "x"}
    return fast_figure([heatmap_dict(tiles)], lay)


def fig_digit(img: np.ndarray, t: int) -> go.Figure:
    """One noisy digit x_t, (28, 28)."""
    lay = layout_dict(f"x_t at t = {t}", height=340)
    lay["xaxis"] = {"visible": False}
    lay["yaxis"] = {"visible": False, "scaleanchor": "x"}
    return fast_figure([heatmap_dict(img, showscale=True)], lay)


def fig_pixel_hist(x0_img: np.ndarray, xt_img: np.ndarray, t: int) -> go.Figure:
    """Pixel values of the clean digit and of x_t, against N(0, 1)."""
    hist = dict(type="histogram", histnorm="probability density", nbinsx=60, opacity=0.6)
    traces = [
        {**hist, "x": compact(x0_img.ravel(), 2), "name": "x_0 pixels", "marker": dict(color=COLORS["data"])},
        {
            **hist,
            "x": compact(finite(xt_img).ravel(), 2),
            "name": f"x_t pixels (t = {t})",
            "marker": dict(color=COLORS["x_t"]),
        },
        normal_pdf_line(),
    ]
    lay = layout_dict(
        "Pixel histogram<br><sup>from two spikes (ink / paper) to a bell curve</sup>",
        "pixel value",
        "density",
        height=340,
        barmode="overlay",
    )
    lay["xaxis"]["range"] = [-4, 4]
    lay["yaxis"]["range"] = [0, 2.0]
    return fast_figure(traces, lay)
