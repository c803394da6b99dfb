"""Lesson: inpainting — fill in the unknown part of x_0 given the known part.

Two ways: (a) the replacement method with a standard model (toy_models.inpainting.sample_replacement:
known pixels re-noised to x_t at every step, optional RePaint resampling), (b) a model fine-tuned on
masked images (toy_models.networks.InpaintUNet, sampled with plain DDIM). The 2D analogue conditions
a point of the Gaussian mixture on one coordinate, where the exact answer is a 1D mixture.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lessons.figures import COLORS, compact, finite, image_heatmap, layout, scatter2d
from toy_models.inpainting import coordinate_mask, gmm_condition_on, sample_replacement
from toy_models.networks import fast_inference
from toy_models.samplers import run_with_trajectory, sample_ddim

MASK_PRESETS = ("left half", "right half", "top half", "bottom half", "centre box", "scattered pixels", "custom")
GRID = 7  # the custom mask is a GRID x GRID board of 4x4-pixel blocks
CLIP = (-1.0, 1.0)  # digits live in [-1, 1]

INTRO = (
    "Hide part of a digit and let a diffusion model fill it in. The one control to touch first: the "
    "**mask** — then compare the two methods side by side."
)
EQ_REPLACE = (
    r"\begin{aligned}x_{t'}^{\text{model}} &= \sqrt{\bar\alpha_{t'}}\,\hat x_0(x_t) + "
    r"\sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\hat\epsilon(x_t) + \sigma z "
    r"\quad(\text{DDIM},\ \eta = 1) \\ "
    r"x_{t'} &= m\odot\big(\sqrt{\bar\alpha_{t'}}\,x_0^{\text{known}} + \sqrt{1-\bar\alpha_{t'}}\,\epsilon\big)"
    r" + (1-m)\odot x_{t'}^{\text{model}}\end{aligned}"
)
EQ_SIGMA = (
    r"\sigma^2 = \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\Big(1-\frac{\bar\alpha_t}{\bar\alpha_{t'}}\Big),"
    r"\qquad t \to t' \text{ one step of the strided grid}"
)
EQ_RESAMPLE = (
    r"x_t \sim q(x_t \mid x_{t'}) = \mathcal N\Big(\sqrt{\bar\alpha_t/\bar\alpha_{t'}}\;x_{t'},\ "
    r"\big(1-\bar\alpha_t/\bar\alpha_{t'}\big) I\Big)"
)
NARRATIVE = (
    "**Replacement** needs no new training. The sampler walks a strided grid of times, one step t → t′ "
    "at a time (DDIM with η = 1, a stochastic step: first line below). After each step the known pixels "
    "are overwritten by the known digit noised afresh to level t′ (second line), and the model's step "
    "fills the rest. The unknown pixels hear about the known ones only through the model's prediction "
    "from x_t, whose known part is a noisy copy of the digit: at high noise that copy says little, the "
    "unknown pixels commit to a guess, and the later, smaller steps revise it only a little, so the two "
    "parts can disagree at the seam."
)
RESAMPLE_TEXT = (
    "**Resampling** (RePaint, Lugmayr et al. 2022) noises each step's result back from t′ to t in one "
    "jump of the forward process (below) and takes the step again, r times in all: more chances for "
    "the unknown pixels to agree with the known ones, at r network evaluations per step instead of 1."
)
FINETUNED_TEXT = (
    "A model **fine-tuned for inpainting** gets the mask and the known pixels themselves as extra "
    "inputs at every step, so it is trained to predict the noise given the known pixels, not their "
    "noisy copy. It needs no replacement and no resampling loop: one network evaluation per step "
    "(here plain deterministic DDIM), at the price of training a network for the task."
)
IDEA_2D = (
    "Know x₁ of a point of the Gaussian mixture and sample x₂: the exact answer p(x₂ | x₁) is again a "
    "mixture, so the figure shows how close replacement gets."
)
LOOK_2D = (
    "Look for: every point on the vertical line x₁ = known (left), and where the orange histogram puts more "
    "or less mass than the green exact curve (right)."
)
LOOK_MASK = "Look for: how much of the digit's stroke the mask leaves visible."
LOOK_SAMPLES = "Look for: whether the filled-in pixels continue the known strokes across the mask's edge."
LOOK_STEP = {
    "replacement": "Look for: the known region is the digit re-noised to this t; the rest forms from noise.",
    "fine-tuned": "Look for: nothing is replaced: the whole image is the model's own state, steered by the mask input.",
}
TRY_THIS = (
    "**Try this:** (1) on the 2D mixture, with resampling r = 1 the replacement histogram misses the exact "
    "conditional (the Wasserstein distance in the caption is many times the floor); raise r to 10 and the "
    "distance falls, yet stays well above the floor: resampling helps but does not finish the job at 50 "
    "steps. (2) On MNIST pick 'scattered pixels' — about 90% of the pixels hidden — and compare how often "
    "each method still yields a digit the judge reads as the original."
)
TRY_R = (1, 10)  # the resampling values prompt (1) names
SCATTER_KEEP = 0.1  # 'scattered pixels' keeps this share of the pixels: prompt (2)'s "90% hidden"


# =============================================================================================
# Masks
# =============================================================================================
def preset_mask(name: str, seed: int = 0, keep_fraction: float = SCATTER_KEEP, blocks=None) -> torch.Tensor:
    """(1, 1, 28, 28) float mask, 1 = known. `blocks`: GRID x GRID 0/1 for "custom" (4x4-pixel blocks)."""
    m = torch.zeros(1, 1, 28, 28)
    if name == "left half":
        m[..., :, :14] = 1
    elif name == "right half":
        m[..., :, 14:] = 1
    elif name == "top half":
        m[..., :14, :] = 1
    elif name == "bottom half":
        m[..., 14:, :] = 1
    elif name == "centre box":  # the digit is known except a 12x12 box in the middle
        m[:] = 1
        m[..., 8:20, 8:20] = 0
    elif name == "scattered pixels":
        g = torch.Generator().manual_seed(int(seed))
        m[:] = (torch.rand(1, 1, 28, 28, generator=g) < float(keep_fraction)).float()
    elif name == "custom":
        b = torch.as_tensor(np.asarray(blocks if blocks is not None else np.zeros((GRID, GRID)), dtype=np.float32))
        if b.shape != (GRID, GRID):
            raise ValueError(f"blocks must be a {GRID}x{GRID} array of 0/1; got shape {tuple(b.shape)}")
        m[0, 0] = (b > 0.5).float().repeat_interleave(4, 0).repeat_interleave(4, 1)
    else:
        raise ValueError(f"unknown mask {name!r}; valid: {', '.join(MASK_PRESETS)}")
    return m


# =============================================================================================
# MNIST: the two methods, measured
# =============================================================================================
def _x_T(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(int(seed)))


def inpaint_replacement(
    model, s, x0, mask, n: int, seed: int, steps: int, resample: int = 1, stride: int = 1, progress=None, y=None
):
    """Trajectory of the replacement method (sample_replacement) for n samples of one masked digit x0 (1, 1, 28, 28)."""
    total = steps * resample
    cb = None if progress is None else (lambda st: progress(min(1.0, (st.i + 1) / total)))
    with fast_inference(x0.device):  # bfloat16 convolutions where the CPU has them: half the time
        return run_with_trajectory(
            sample_replacement,
            model,
            s,
            _x_T(n, seed),
            stride=stride,
            steps=steps,
            mask=mask,
            known=x0,
            resample=resample,
            clip_x0=CLIP,
            y=y,
            generator=torch.Generator().manual_seed(int(seed) + 1),
            callback=cb,
        )


def inpaint_finetuned(net, s, x0, mask, n: int, seed: int, steps: int, stride: int = 1, progress=None, y=None):
    """Trajectory of plain DDIM with the fine-tuned InpaintUNet bound to (mask, mask * x0)."""
    cb = None if progress is None else (lambda st: progress(min(1.0, (st.i + 1) / steps)))
    with fast_inference(x0.device):
        return run_with_trajectory(
            sample_ddim,
            net.conditioned(mask, mask * x0),
            s,
            _x_T(n, seed),
            stride=stride,
            steps=steps,
            clip_x0=CLIP,
            y=y,
            callback=cb,
        )


def known_region_error(samples, x0, mask) -> float:
    """RMS difference on the known pixels between the samples (N, 1, 28, 28) and x0 (0 = exact agreement)."""
    m = mask.expand_as(samples) > 0
    if not m.any():
        return 0.0
    d = (samples - x0.expand_as(samples))[m]
    return float(d.pow(2).mean().sqrt())


def seam_error(samples, mask) -> float:
    """Mean |difference| between horizontally/vertically adjacent pixels across the mask boundary,
    minus the same inside regions: a rough 'visible seam' score (0 = no seam)."""
    m = mask.expand_as(samples)
    out = []
    for dim in (-1, -2):
        a, b = samples.narrow(dim, 0, 27), samples.narrow(dim, 1, 27)
        ma, mb = m.narrow(dim, 0, 27), m.narrow(dim, 1, 27)
        diff = (a - b).abs()
        cross, same = ma != mb, ma == mb
        if cross.any():
            out.append(float(diff[cross].mean() - diff[same].mean()))
    return float(np.mean(out)) if out else 0.0


def validity(samples, label: int, judge) -> dict:
    """How often the judge reads the samples as the original digit, and how confident it is."""
    from toy_models.metrics import judge_logits

    p = torch.softmax(judge_logits(samples, judge), 1)
    return dict(accuracy=float((p.argmax(1) == int(label)).double().mean()), confidence=float(p.max(1).values.mean()))


# =============================================================================================
# 2D: condition on one coordinate
# =============================================================================================
def inpaint_2d(model, s, value: float, n: int, seed: int, steps: int, resample: int, dim: int = 0, stride: int = 1):
    """Replacement-method trajectory for n points with coordinate `dim` known (= value), float64."""
    known = torch.zeros(2, dtype=torch.float64)
    known[dim] = float(value)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return run_with_trajectory(
        sample_replacement,
        model,
        s,
        x_T,
        stride=stride,
        steps=steps,
        mask=coordinate_mask(dim).double(),
        known=known,
        resample=resample,
        generator=torch.Generator().manual_seed(int(seed) + 1),
    )


def exact_conditional_1d(gmm, value: float, dim: int = 0, n_grid: int = 241, half_width: float = 3.5):
    """(grid, density) of the exact p(x_other | x_dim = value) for a 2D mixture
    (toy_models.inpainting.gmm_condition_on)."""
    cond = gmm_condition_on(gmm, dim, value)
    u = torch.linspace(-half_width, half_width, n_grid, dtype=torch.float64)
    return u.numpy(), cond.log_prob(u[:, None]).exp().numpy()


def wasserstein_to_exact(
    samples_1d: np.ndarray, gmm, value: float, dim: int = 0, n_exact: int = 20_000, seed: int = 0
) -> float:
    """W1 distance between the samples' other coordinate and the exact conditional (quantile matching)."""
    cond = gmm_condition_on(gmm, dim, value)
    ex, _ = cond.sample(n_exact, generator=torch.Generator().manual_seed(int(seed)))
    q = np.linspace(0.5 / len(samples_1d), 1 - 0.5 / len(samples_1d), len(samples_1d))
    a = np.sort(finite(samples_1d))
    b = np.quantile(ex[:, 0].numpy(), q)
    return float(np.abs(a - b).mean())


# =============================================================================================
# Figures
# =============================================================================================
def fig_2d(
    x0: np.ndarray, value: float, grid, dens, exact_samples: np.ndarray, data: np.ndarray | None = None, dim: int = 0
) -> go.Figure:
    """Left: the points (known coordinate on the line). Right: histogram of the other coordinate vs exact density."""
    other = 1 - dim
    fig = make_subplots(
        1,
        2,
        column_widths=[0.5, 0.5],
        subplot_titles=("samples (known coordinate fixed)", f"x{other + 1} given x{dim + 1} = {value:g}"),
    )
    if data is not None:
        fig.add_trace(
            scatter2d(data, "data", "data", 3, 0.25),
            1,
            1,
        )
    x = compact(np.clip(finite(x0), -6, 6))
    fig.add_trace(
        go.Scatter(
            x=x[:, 0],
            y=x[:, 1],
            mode="markers",
            name="replacement samples",
            marker=dict(size=4, color=COLORS["learned"], opacity=0.6),
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Histogram(
            x=x[:, other],
            histnorm="probability density",
            name="replacement (histogram)",
            marker_color=COLORS["learned"],
            opacity=0.55,
            nbinsx=40,
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Histogram(
            x=compact(exact_samples),
            histnorm="probability density",
            name="exact samples",
            marker_color=COLORS["truth"],
            opacity=0.35,
            nbinsx=40,
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Scatter(
            x=compact(grid),
            y=compact(dens, 4),
            mode="lines",
            name="exact p(other | known)",
            line=dict(color=COLORS["truth"], width=2),
        ),
        1,
        2,
    )
    layout(fig, "", "", "", height=400, legend_below=True, barmode="overlay")
    fig.update_xaxes(title_text="x₁ (data units)", range=[-3.5, 3.5], row=1, col=1)
    fig.update_yaxes(title_text="x₂ (data units)", range=[-3.5, 3.5], row=1, col=1)
    fig.update_xaxes(title_text=f"x{other + 1} (data units)", row=1, col=2)
    fig.update_yaxes(title_text="density", row=1, col=2)
    return fig


def fig_images(images, titles, title: str = "", height: int = 230) -> go.Figure:
    """A row of (28, 28) images in [-1, 1] with titles."""
    n = len(images)
    fig = make_subplots(1, n, subplot_titles=list(titles), horizontal_spacing=0.02)
    for k, img in enumerate(images):
        fig.add_trace(image_heatmap(np.asarray(img).reshape(28, 28), name=str(titles[k])), 1, k + 1)
    layout(fig, title, "", "", height=height)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def masked_view(x0, mask) -> np.ndarray:
    """(28, 28): the known pixels, unknown ones shown as mid-grey 0."""
    return (x0 * mask).reshape(28, 28).numpy()


def fig_chain(traj, k: int = 0, n_frames: int = 8, title: str = "") -> go.Figure:
    """Sample k's state x_t at n_frames kept times of a Trajectory, x_T -> x_0 (and its predicted x_0 row)."""
    K = traj.xs.shape[0]
    idx = sorted(set(np.linspace(0, K - 1, min(n_frames, K)).round().astype(int).tolist()))
    imgs = [traj.xs[i, k] for i in idx]
    titles = [f"t = {traj.ts[i]:.0f}" for i in idx]
    return fig_images(imgs, titles, title, height=200)
