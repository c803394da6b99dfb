"""Lesson 8 — the training lab: train a small diffusion model live and watch it learn.

The page picks the data (a 2D toy, MNIST, or the user's own 2D points), the network's width and depth,
the objective, the steps, the learning rate and how often to snapshot; `build_recipe` turns that into a
`toy_models.recipes.Recipe` (or a clear message saying what to change), and `course.jobs` trains it in
the background. This module holds the narrative, the recipe building, the validation of uploaded or
drawn points, and the figure builders. No streamlit here (views/training_lab.py renders).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from toy_models.recipes import Recipe, get_recipe
from toy_models.schedules import Schedule, schedule_to_dict

from .figures import COLORS, DIGIT_COLORSCALE, compact, equal_axes, finite, layout, scatter2d, tile_images
from .settings import DATA_2D

# --- narrative ------------------------------------------------------------------------------------
INTRO = (
    "Train your own diffusion model here and watch its loss fall and its samples take shape, step by "
    "step. Touch **data** first: pick a toy, or draw your own points, then press **Train**."
)
WHAT_YOU_SEE = """
**The loss curve** is L_simple (or the bound's terms) per dimension, one point per optimisation step;
it is noisy because every step draws fresh x_0, t and noise. **Loss per t** splits it by noise level:
small t (almost clean x_t) is where the noise is hardest to guess, so for L_simple that bar stays highest
(for L_vlb the first bin also holds L_0, a log-density of continuous points, which can be negative).
**Snapshots** are 20-step DDIM samples of the EMA weights from the same x_T each time, so you see the
same points move as the model learns.
"""
TRY_THIS = (
    "Set the learning rate to 1: the loss jumps during the warm-up (the first 50 of 1,000 steps, while the rate "
    "climbs to 1), then comes back down.",
    "Compare the objectives: L_vlb's loss curve is far noisier than L_simple's (it weights small t heavily), "
    "while the hybrid's is almost L_simple's: with σ_t fixed, the hybrid only reweights L_simple a little "
    "(see the note under the objective).",
    "Draw a letter with the lasso, train 2,000 steps, then use it in the reverse chain lesson (sidebar: model).",
)
OBJECTIVE_LABELS = {
    "simple": "L_simple (noise MSE)",
    "vlb": "L_vlb (the bound)",
    "hybrid": "hybrid (L_simple + 0.001 L_vlb)",
}
DATA_LABELS = {"own": "my own points (draw or upload)", "mnist": "MNIST digits (slow on a CPU)"}

# --- choices --------------------------------------------------------------------------------------
DATA_OPTIONS = DATA_2D + ("mnist", "own")  # what the lab trains on
OBJECTIVES = ("simple", "vlb", "hybrid")
WIDTHS = (16, 32, 64, 128, 256)  # MLP hidden width (2D); U-Net base channels (MNIST)
DEPTHS = (1, 2, 3, 4, 5, 6)  # residual blocks (2D); resolution levels (MNIST, at most 3)
STEPS = (100, 200, 500, 1000, 2000, 4000, 10000)
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0)
SNAPSHOT_EVERY = (10, 25, 50, 100, 250, 500, 1000)
MAX_STEPS = 20_000
MAX_ABAR_T = 0.05  # x_T must be nearly pure noise: sampling starts from N(0, I)
MNIST_MAX_LEVELS = 3  # 28 -> 14 -> 7; a 4th level would need 28 divisible by 8
BATCH_2D, BATCH_MNIST = 512, 64
MIN_POINTS = 10
MAX_CSV_BYTES = 1_000_000  # about 50,000 points
GRID_HALF, GRID_N = 2.0, 41  # the drawing grid: GRID_N x GRID_N candidate points on [-2, 2]^2
JITTER_PER_POINT = 20  # points drawn around each selected grid point
MIN_SELECTED = 3  # grid points a drawing needs


@dataclass(frozen=True)
class LabChoice:
    """What the user picked on the page."""

    data: str = "moons"  # one of DATA_OPTIONS
    width: int = 128  # MLP width (2D) or U-Net base channels (MNIST)
    depth: int = 3  # MLP residual blocks (2D) or U-Net resolution levels (MNIST)
    objective: str = "simple"  # one of OBJECTIVES
    steps: int = 1000  # optimisation steps
    lr: float = 3e-3  # peak learning rate (AdamW, warm-up then cosine decay)
    snapshot_every: int = 100  # take DDIM samples every N steps
    seed: int = 0  # initialisation, batches and noise


def abar_T_message(s: Schedule) -> str | None:
    """A message when the schedule leaves too much signal at t = T (sampling starts from pure noise)."""
    a = float(s.alphas_cumprod[s.T])
    if a > MAX_ABAR_T:
        return (
            f"With the sidebar's schedule ({s.describe()}) x_T still holds sqrt(ᾱ_T) = {math.sqrt(a):.2f} of "
            f"the signal (ᾱ_T = {a:.3g} > {MAX_ABAR_T}), but sampling starts from pure noise N(0, I): the model "
            "would learn the wrong starting point. Raise beta_T in the sidebar (T only changes how many "
            "steps share the same journey to noise)."
        )
    return None


def build_recipe(c: LabChoice, schedule: Schedule, n_points: int | None = None) -> tuple[Recipe | None, str | None]:
    """(Recipe, None) for the user's choices, or (None, a message saying what to change).

    n_points: the number of the user's own points (data "own"), None if there are none yet.
    The recipe is a shipped one (moons for 2D, mnist for digits) with the user's fields replaced.
    """
    if c.data not in DATA_OPTIONS:
        return None, f"Unknown data {c.data!r}; choose one of {', '.join(DATA_OPTIONS)}."
    if c.objective not in OBJECTIVES:
        return None, f"Unknown objective {c.objective!r}; choose one of {', '.join(OBJECTIVES)}."
    if not (isinstance(c.steps, int) and 1 <= c.steps <= MAX_STEPS):
        return None, f"Steps must be a whole number from 1 to {MAX_STEPS:,}; got {c.steps!r}."
    if not (isinstance(c.lr, (int, float)) and math.isfinite(c.lr) and 0 < c.lr <= 10):
        return None, f"The learning rate must be a number in (0, 10]; got {c.lr!r}."
    if not 1 <= c.snapshot_every <= c.steps:
        return None, (
            f"Snapshots every {c.snapshot_every} steps, but only {c.steps} steps: choose at most "
            f"{c.steps} (a snapshot is always taken at the last step too)."
        )
    if c.width < 8 or c.depth < 1:
        return None, f"The network needs width ≥ 8 and depth ≥ 1; got width {c.width}, depth {c.depth}."
    msg = abar_T_message(schedule)
    if msg:
        return None, msg
    sched = schedule_to_dict(schedule)
    common = dict(
        objective=c.objective,
        steps=c.steps,
        lr=float(c.lr),
        schedule=sched,
        seed=int(c.seed),
        vlb_sampling="uniform",
        lr_schedule="cosine",
    )
    if c.data == "mnist":
        if c.depth > MNIST_MAX_LEVELS:
            return None, (
                f"MNIST depth {c.depth} asks the U-Net to halve 28 pixels {c.depth - 1} times "
                f"(28 → 14 → 7 → 3.5): at most {MNIST_MAX_LEVELS} levels. Choose depth 1 to 3."
            )
        if c.width % 8:
            return None, f"The U-Net's GroupNorm uses 8 groups: the width must be a multiple of 8; got {c.width}."
        chans = [c.width, 2 * c.width, 2 * c.width][: c.depth]
        shipped = get_recipe("mnist")  # its U-Net (skips, upsampling, labels) with the user's channels
        recipe = shipped.replace(
            name="lab",
            description=f"Trained in the training lab: MNIST, U-Net channels {chans}, {OBJECTIVE_LABELS[c.objective]}.",
            network_config={**shipped.network_config, "channels": chans, "attention": c.depth == 3},
            batch_size=BATCH_MNIST,
            lr_warmup=min(500, c.steps // 10),
            init_from=None,
            **common,
        )
        return recipe, None
    if c.data == "own":
        if not n_points:
            return None, "No points yet: draw some with the lasso on the grid, or upload a CSV, then train."
        if n_points < MIN_POINTS:
            return None, f"Only {n_points} points: at least {MIN_POINTS} are needed."
    # SiLU + LayerNorm (the MLPConfig default), not the shipped models' ReLU network: the lab shows DDIM
    # snapshots, and DDIM samples of the SiLU network sit closer to the data (recipes.py). Trained from
    # scratch both reach 1.5x the floor within the 10 s target (benchmarks/bench_training.py). The time
    # embedding is the shipped models' 64 wide.
    recipe = get_recipe("moons").replace(
        name="lab",
        description=f"Trained in the training lab: {c.data}, MLP width {c.width} × {c.depth} blocks, "
        f"{OBJECTIVE_LABELS[c.objective]}.",
        data=c.data,
        data_params={},
        network_config={"width": c.width, "n_blocks": c.depth, "time_embed_dim": 64, "gaussian_skip": True},
        batch_size=BATCH_2D,
        lr_warmup=min(50, c.steps // 10),
        n_train=int(n_points) if c.data == "own" else 50_000,
        snapshot_n=500,
        **common,
    )
    return recipe, None


# --- the user's own points ---------------------------------------------------------------------------
def standardise(points: np.ndarray) -> np.ndarray:
    """Centre the points and divide by ONE scale, sqrt(mean of the two coordinate variances), so the
    average variance per coordinate is 1 and the shape keeps its aspect ratio (the toys are on this scale)."""
    p = np.asarray(points, dtype=np.float64)
    p = p - p.mean(0)
    scale = math.sqrt(float(p.var(0).mean()))
    return (p / scale).astype(np.float32)


_SPLIT = re.compile(r"\s*[,;\t]\s*|\s+")


def parse_points_csv(raw: bytes) -> tuple[np.ndarray | None, str | None]:
    """(points (N, 2) float32 standardised, None) from a CSV of x, y rows, or (None, a message).

    One optional header line (e.g. "x,y"); separators: comma, semicolon, tab or spaces; blank lines skipped.
    Refused, with the reason: over MAX_CSV_BYTES, not text, a row without exactly 2 columns, a value that is
    not a number, NaN or infinite values, fewer than MIN_POINTS points, or points with no spread.
    """
    if raw is None:
        return None, "No file."
    if len(raw) > MAX_CSV_BYTES:
        return None, (
            f"The file is {len(raw) / 1e6:.2f} MB; the limit is {MAX_CSV_BYTES / 1e6:.0f} MB "
            f"(about 50,000 points). Nothing was changed."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "The file is not UTF-8 text: upload a plain CSV with two numbers (x, y) per line."
    rows = [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        return None, "The file is empty: it needs two numbers (x, y) per line."
    pts, bad_cols, bad_nums, bad_nan = [], [], [], []
    for k, (lineno, line) in enumerate(rows):
        fields = [f.strip("\"'") for f in _SPLIT.split(line) if f != ""]
        if k == 0 and not all(_is_number(f) for f in fields):
            continue  # a header line
        if len(fields) != 2:
            bad_cols.append((lineno, len(fields)))
            continue
        try:
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            bad_nums.append((lineno, line[:40]))
            continue
        if not (math.isfinite(x) and math.isfinite(y)):
            bad_nan.append(lineno)
            continue
        pts.append((x, y))
    if bad_cols:
        where = ", ".join(f"line {n} has {c}" for n, c in bad_cols[:3])
        return None, (
            f"Every line needs exactly 2 columns (x, y): {where}"
            f"{f' (and {len(bad_cols) - 3} more)' if len(bad_cols) > 3 else ''}. Nothing was changed."
        )
    if bad_nums:
        where = "; ".join(f"line {n}: {t!r}" for n, t in bad_nums[:3])
        return None, (
            f"{len(bad_nums)} line(s) are not numbers ({where}). Only a first header line may hold text. "
            "Nothing was changed."
        )
    if bad_nan:
        return None, (
            f"{len(bad_nan)} line(s) hold NaN or infinite values (line(s) "
            f"{', '.join(map(str, bad_nan[:5]))}). Remove them and upload again. Nothing was changed."
        )
    if len(pts) < MIN_POINTS:
        return None, f"Only {len(pts)} point(s); at least {MIN_POINTS} are needed. Nothing was changed."
    arr = np.asarray(pts, dtype=np.float64)
    if float(arr.var(0).mean()) <= 1e-12:
        return None, "All points are the same: there is no shape to learn. Nothing was changed."
    return standardise(arr), None


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def candidate_grid(half: float = GRID_HALF, n: int = GRID_N) -> np.ndarray:
    """(n*n, 2) candidate points on a square grid; the user lassoes some of them."""
    ax = np.linspace(-half, half, n)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)


def points_from_selection(
    indices, grid: np.ndarray | None = None, per_point: int = JITTER_PER_POINT, seed: int = 0
) -> tuple[np.ndarray | None, str | None]:
    """The drawn data: each selected grid point becomes `per_point` points jittered uniformly within its grid
    cell, then standardised. (points, None) or (None, a message)."""
    grid = candidate_grid() if grid is None else grid
    idx = sorted({int(i) for i in indices if 0 <= int(i) < len(grid)})
    if len(idx) < MIN_SELECTED:
        return None, (
            f"{len(idx)} grid point(s) selected: lasso or box-select at least {MIN_SELECTED} "
            "(drag over the grid; the toolbar switches between lasso and box)."
        )
    spacing = 2 * GRID_HALF / (GRID_N - 1)
    rng = np.random.default_rng(seed)
    base = np.repeat(grid[idx].astype(np.float64), per_point, axis=0)
    pts = base + rng.uniform(-spacing / 2, spacing / 2, size=base.shape)
    return standardise(pts), None


def selected_indices(selection) -> list[int]:
    """Grid indices from a plotly selection event (st.plotly_chart(on_select=...)): points of trace 0."""
    points = getattr(selection, "points", None)
    if points is None and isinstance(selection, dict):
        points = selection.get("points")
    out = []
    for p in points or []:
        p = dict(p)
        if p.get("curve_number", p.get("curveNumber", 0)) == 0:
            i = p.get("point_index", p.get("pointIndex", p.get("point_number", p.get("pointNumber"))))
            if i is not None:
                out.append(int(i))
    return out


# --- what the model sees ----------------------------------------------------------------------------------
def noised_preview(x0: torch.Tensor, s: Schedule, t: int, seed: int = 0) -> np.ndarray:
    """x_t ~ q(x_t | x_0) for the preview (Ho et al. eq. 4): what the network is asked to denoise at this t."""
    from toy_models.diffusion import q_sample

    t = min(max(int(t), 0), s.T)
    g = torch.Generator().manual_seed(int(seed))
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    return q_sample(s, x0, t, noise=torch.randn(x0.shape, generator=g, dtype=torch.float64)).numpy()


# --- figures -------------------------------------------------------------------------------------------
def loss_axis_label(objective: str) -> str:
    return {
        "simple": "L_simple per dimension (MSE of ε)",
        "vlb": "L_vlb per dimension (nats)",
        "hybrid": "L_simple + 0.001 L_vlb per dimension",
    }.get(objective, "loss per dimension")


def smooth(values: np.ndarray, window: int = 50) -> np.ndarray:
    """A trailing running mean (window steps) of a noisy curve."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.minimum(np.arange(1, v.size + 1), window)
    return (c[1:] - c[np.arange(1, v.size + 1) - n]) / n


def thin(n: int, max_points: int = 2000) -> np.ndarray:
    """At most max_points indices of 0..n-1, evenly spread, always with the last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.append(np.linspace(0, n - 1, max_points).round().astype(int), n - 1))


def fig_loss_curve(losses: np.ndarray, objective: str = "simple", title: str = "Training loss") -> go.Figure:
    """The loss of every step (faint) and its running mean, on a log y axis (linear if a loss is ≤ 0)."""
    losses = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, losses.size + 1)
    keep = thin(losses.size)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=steps[keep],
            y=compact(finite(losses[keep]), 5),
            mode="lines",
            name="each step",
            line=dict(color=COLORS["learned"], width=1),
            opacity=0.35,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=steps[keep],
            y=compact(finite(smooth(losses)[keep]), 5),
            mode="lines",
            name="running mean (50 steps)",
            line=dict(color=COLORS["learned"], width=2.5),
        )
    )
    log = losses.size == 0 or bool(np.all(losses[np.isfinite(losses)] > 0))
    layout(
        fig,
        title + ("" if log else " (linear axis: the loss has values ≤ 0)"),
        x="training step",
        y=loss_axis_label(objective),
        height=340,
    )
    fig.update_yaxes(type="log" if log else "linear")
    return fig


def bucket_labels(T: int, n: int) -> list[str]:
    """'t 1–100', ... for n equal bins of 1..T (training.py's buckets)."""
    edges = [1 + (i * T) // n for i in range(n + 1)]
    return [f"t {edges[i]}–{max(edges[i + 1] - 1, edges[i])}" for i in range(n)]


def fig_bucket_losses(bucket_losses, T: int, objective: str = "simple") -> go.Figure:
    """The running mean loss in each bin of t: which noise levels the model still gets wrong."""
    vals = np.array([np.nan if v is None else v for v in bucket_losses], dtype=np.float64)
    labels = bucket_labels(T, len(vals))
    ok = np.isfinite(vals)
    log = bool(ok.any() and np.all(vals[ok] > 0))
    fig = go.Figure(
        go.Bar(
            x=[lbl for lbl, o in zip(labels, ok) if o],
            y=compact(vals[ok], 5),
            marker_color=COLORS["learned"],
            name="running mean loss",
        )
    )
    layout(
        fig,
        "Loss per noise level t",
        x="bin of the time step t (small t = almost clean)",
        y=loss_axis_label(objective),
        height=320,
    )
    fig.update_yaxes(type="log" if log else "linear")
    return fig


def pick_snapshots(snapshots, k: int = 4) -> list:
    """At most k snapshots, evenly spread from the first to the last."""
    snapshots = list(snapshots)
    if len(snapshots) <= k:
        return snapshots
    idx = np.unique(np.linspace(0, len(snapshots) - 1, k).round().astype(int))
    return [snapshots[i] for i in idx]


def fig_snapshots_2d(snapshots, data: np.ndarray | None = None, k: int = 4, half: float = 3.0) -> go.Figure:
    """Samples of the EMA model at up to k training steps, over the training data (faint)."""
    chosen = pick_snapshots(snapshots, k) or [(0, np.zeros((0, 2), np.float32))]
    fig = make_subplots(1, len(chosen), subplot_titles=[f"step {s}" for s, _ in chosen], horizontal_spacing=0.03)
    for j, (_, pts) in enumerate(chosen, start=1):
        if data is not None:
            tr = scatter2d(data, "training data", "data", size=3, opacity=0.25)
            tr.showlegend = j == 1
            fig.add_trace(tr, 1, j)
        tr = scatter2d(np.clip(finite(pts), -half * 3, half * 3), "model samples", "learned", size=3, opacity=0.7)
        tr.showlegend = j == 1
        fig.add_trace(tr, 1, j)
        fig.update_xaxes(range=[-half, half], title_text="x₁", row=1, col=j)
        fig.update_yaxes(range=[-half, half], title_text="x₂" if j == 1 else "", row=1, col=j)
    layout(fig, "Samples as the model learns (20-step DDIM, same x_T each time)", height=340, legend_below=True)
    fig.update_xaxes(title_text="x₁")
    fig.update_yaxes(title_text="x₂", col=1)
    return fig


def fig_snapshot_digits(samples: np.ndarray, step: int | None, title: str | None = None) -> go.Figure:
    """A grid of digits (a snapshot, or training digits) as one grey heatmap."""
    m = tile_images(np.clip(finite(samples), -1, 1), cols=10)
    fig = go.Figure(
        go.Heatmap(
            z=compact(m[::-1], 2),
            zmin=-1,
            zmax=1,
            colorscale=DIGIT_COLORSCALE,
            showscale=False,
            hovertemplate="pixel value %{z:.2f}<extra></extra>",
        )
    )
    layout(
        fig,
        title or f"Samples at step {step} (20-step DDIM; column k asks for the digit k)",
        x="column (the label asked for)",
        y="row",
        height=320,
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor="x")
    return fig


def fig_candidate_grid(grid: np.ndarray, selected: np.ndarray | None = None) -> go.Figure:
    """The drawing board: faint candidate points to lasso (trace 0) and, on top, the points drawn so far."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=compact(grid[:, 0]),
            y=compact(grid[:, 1]),
            mode="markers",
            name="grid (lasso me)",
            marker=dict(size=6, color=COLORS["data"], opacity=0.25),
        )
    )
    if selected is not None and len(selected):
        fig.add_trace(scatter2d(selected, "your points (before standardising)", "x_t", size=4, opacity=0.8))
    layout(fig, "Draw: lasso or box-select grid points", x="x₁", y="x₂", height=420, dragmode="lasso")
    return equal_axes(fig, GRID_HALF * 1.05)


def fig_training_preview(x0: np.ndarray, xt: np.ndarray, t: int, abar_t: float) -> go.Figure:
    """What the model is trained on: the data x_0 and, at the preview t, the noisy x_t it must denoise."""
    fig = go.Figure()
    fig.add_trace(scatter2d(x0, "training data x₀", "data", size=3, opacity=0.5))
    if t > 0:
        fig.add_trace(scatter2d(xt, f"x_t at t = {t}", "x_t", size=3, opacity=0.6))
    layout(fig, f"What the network sees at t = {t} (ᾱ_t = {abar_t:.3g})", x="x₁", y="x₂", height=380)
    return equal_axes(fig, 3.5)
