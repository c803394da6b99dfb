"""Lesson: conditional generation — a label as input, classifier guidance, classifier-free guidance.

On the 2D Gaussian mixture everything has an exact answer: the class-conditional model is
`AnalyticModel(gmm, s)` with y = the component (y = K is the null label), and the noisy classifier
p(y | x_t) is Bayes' rule on the noised mixture (`ExactNoisyClassifier`). The learned 2D models
("gmm", "gmm-classifier") and the MNIST ones plug into the same functions. Guidance itself is
`toy_models.guidance` (a wrapper of the model), so every sampler runs it unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lessons.figures import COLORS, compact, equal_axes, finite, image_heatmap, layout, scatter2d, tile_images
from toy_models.gmm import ExactNoisyClassifier  # noqa: F401  (the pages use it as L.ExactNoisyClassifier)
from toy_models.guidance import ClassifierFreeGuidance, ClassifierGuidance, classifier_log_prob_grad
from toy_models.networks import fast_inference
from toy_models.samplers import run_with_trajectory, sample_ddim

CFG_MAX = 10.0  # the classifier-free scale slider's top
CG_MAX = 20.0  # the classifier-guidance scale slider's top
HALF_WIDTH = 3.2  # 2D plots span [-HALF_WIDTH, HALF_WIDTH]^2 (the mixture has unit variance per axis)
CLASS_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#ff7f0e",
)  # one colour per class label (component / digit)

ARROW_REF = 20.0  # |grad log p(y | x_t)| at which the classifier's arrows reach full size, the same at every t

INTRO = (
    "Pick a class and watch the sampler land in it. The one control to touch first: the **guidance "
    "scale** — at 0 the samples ignore the label; turn it up and they crowd into the class, then "
    "into a tight cloud."
)
EQ_LABEL = r"\epsilon_\theta(x_t, t, y),\qquad y \in \{0,\dots,K-1\} \cup \{\varnothing\}"
EQ_CG = (
    r"\begin{aligned}\nabla_{x_t}\log p_\gamma(x_t\mid y) &= \nabla_{x_t}\log p(x_t) + \gamma\,"
    r"\nabla_{x_t}\log p_\phi(y\mid x_t) \\ \Longleftrightarrow\quad \hat\epsilon &= \epsilon_\theta(x_t,t) - "
    r"\gamma\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p_\phi(y\mid x_t)\end{aligned}"
)
EQ_CFG = (
    r"\hat\epsilon = \epsilon_\theta(x_t,t,\varnothing) + w\,\big(\epsilon_\theta(x_t,t,y) - "
    r"\epsilon_\theta(x_t,t,\varnothing)\big)"
)
CFG_CONVENTION = (
    "Convention (the code's): **w = 0** is the unconditional model, **w = 1** the conditional model, "
    "**w > 1** over-weights the label. Ho & Salimans (2022) write (1 + w′)ε_cond − w′ε_uncond: the "
    "same with w = 1 + w′. In score terms the guided model follows ∇log p_t(x) + w ∇log p_t(y | x) at "
    "every t, the score of p_t(x) p_t(y | x)^w ∝ p_t(x | y)^w p_t(x)^(1−w); at t = 0 that is the "
    "dotted target below, but the noised versions of that target are not these products, so "
    "the samples follow it only approximately."
)
NARRATIVE_LABEL = (
    "**Conditioning by input.** The network gets the label as one more input, embedded next to "
    "the time. Trained with the label dropped (replaced by a null label ∅) some of the time, the "
    "same network is both p(x | y) and p(x): ask for ∅ and it samples everything."
)
LOOK_LABEL = (
    "Look for: with a class y the samples sit inside the green contours of that component; with ∅ they "
    "spread over all of them."
)
LOOK_MOONS = "Look for: the samples lie on the moon asked for, and on both with ∅."
NARRATIVE_CG = (
    "**Classifier guidance** (Dhariwal & Nichol 2021). Keep an unconditional model and add the "
    "gradient of a classifier: by Bayes' rule ∇log p(x_t | y) = ∇log p(x_t) + ∇log p(y | x_t). "
    "The classifier must be trained on *noisy* inputs x_t at every noise level, with t as an input: "
    "a classifier of clean data has never seen x_t, and its gradient there says nothing reliable "
    "about p(y | x_t). Sampling then costs a forward and a backward pass of the classifier at every "
    "step, on top of the diffusion model. The scale γ sharpens p(y | x_t) into p(y | x_t)^γ: γ = 1 is "
    "exact Bayes, γ > 1 pushes harder."
)
LOOK_FIELD = (
    "Look for: the arrows point into the class's blue region; they are drawn on one scale at every t, "
    "so they shrink as t grows and the noisy classes overlap."
)
LOOK_CG = "Look for: how many samples land inside the class's green contours as γ goes from 0 to 1 and beyond."
NARRATIVE_CFG = (
    "**Classifier-free guidance** (Ho & Salimans 2022) needs no second network, which is why it "
    "largely replaced classifier guidance. One network is trained with the label dropped (replaced by ∅) "
    "some of the time, so it gives both ε(x_t, y) and ε(x_t, ∅). For exact models their difference "
    "is a classifier gradient, ε(x_t, y) − ε(x_t, ∅) = −√(1 − ᾱ_t) ∇log p(y | x_t), so "
    "extrapolating past the conditional model does the classifier's job. Cost: two evaluations of "
    "the one network per step (here one batched call). Past w = 1 the samples gain fidelity (they "
    "look more like the class) and lose diversity (they collapse into a tight cloud)."
)
LOOK_CFG = (
    "Look for: at w = 1 the samples cover the green class density; at large w they shrink, and can be "
    "pushed off the dotted target, away from the other classes."
)
LOOK_SWEEP = (
    "Look for: the share in the class (green) climbs to about 1 by w = 1, while the spread (orange) falls as w grows."
)
TRY_THIS = (
    "**Try this** (class y = 0, the exact model): (1) set w = 0 and see the label ignored: the share in "
    "the class falls to about the class's weight in the mixture. (2) Set w = 1: nearly every sample lands in "
    "the class, with a spread close to the class's own (DDIM's few steps narrow it a little; more DDIM "
    "steps bring it nearer 1). (3) Set w = 8: the cloud shrinks to a fraction of the class's spread and is "
    "pushed away from the other classes, off the class's densest part (the caption's mean log q(x₀ | y) "
    "drops below its value at w = 1): guidance acts at every noise level, where the classes still overlap, "
    "which the dotted t = 0 target does not show. (4) On classifier guidance (T = 1000), move t from 100 to "
    "900 and see the arrows shrink: at high noise the classes overlap and the noisy classifier is unsure."
)
LOOK_MNIST = "Look for: at w = 0 the digits are of any class; as w grows they become the chosen digit."
LOOK_CHAIN = "Look for: the step at which the digit becomes readable."
LOOK_MNIST_CG = "Look for: how often these are the chosen digit, against the classifier-free grid above."
LOOK_MNIST_SWEEP = "Look for: how judge accuracy and feature diversity move as w grows (the caption gives both ends)."
TRY_W = (0.0, 1.0, 8.0)  # the scales prompts (1)-(3) name
TRY_T = (100, 900)  # the times prompt (4) names


# =============================================================================================
# Computations (plain arrays out)
# =============================================================================================
def _labels(label: int, n: int) -> torch.Tensor:
    return torch.full((n,), int(label), dtype=torch.long)


def _noise(n: int, shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(int(seed)), dtype=dtype)


def guided_trajectory(
    model,
    s,
    label,
    n: int,
    seed: int,
    steps: int,
    stride: int = 1,
    shape=(2,),
    eta: float = 0.0,
    clip_x0=None,
    callback=None,
    dtype=torch.float32,
):
    """Run DDIM (Song et al. 2021, eq. 12) with `model` (possibly a guidance wrapper) from seeded noise.

    label: a class, or None for no label. Returns a samplers.Trajectory (ts, xs, pred_x0, pred_eps).
    The same seed gives the same x_T whatever the model, so scales can be compared point by point.
    """
    x_T = _noise(n, shape, seed, dtype)
    y = None if label is None else _labels(label, n)
    return run_with_trajectory(
        sample_ddim,
        model,
        s,
        x_T,
        stride=stride,
        steps=steps,
        y=y,
        eta=eta,
        clip_x0=clip_x0,
        generator=torch.Generator().manual_seed(int(seed) + 1),
        callback=callback,
    )


def cfg_model(model, w: float, null_label: int):
    """The classifier-free-guided model: eps_uncond + w (eps_cond - eps_uncond) (toy_models.guidance)."""
    return ClassifierFreeGuidance(model, w, null_label)


def cg_model(model, classifier, s_scale: float, schedule, pass_y: bool = False):
    """The classifier-guided model: eps - gamma sqrt(1 - abar_t) grad log p(y | x_t) (toy_models.guidance),
    gamma = s_scale (the code's name; the page writes gamma, since s is the score)."""
    return ClassifierGuidance(model, classifier, s_scale, schedule, pass_y=pass_y)


def grid_points(n: int = 41, half_width: float = HALF_WIDTH) -> tuple[np.ndarray, torch.Tensor]:
    """(axis (n,), points (n*n, 2) float64): a square grid, row-major in (x2, x1) for heatmaps."""
    u = np.linspace(-half_width, half_width, n)
    g1, g2 = np.meshgrid(u, u)
    return u, torch.tensor(np.stack([g1.ravel(), g2.ravel()], 1), dtype=torch.float64)


def classifier_field(classifier, t: float, label: int, n_heat: int = 61, n_arrows: int = 15):
    """p(y | x_t) on a grid (for the heatmap) and grad_x log p(y | x_t) on a coarser grid (for arrows).

    Returns dict(axis, prob (n_heat, n_heat), arrow_xy (M, 2), arrow_grad (M, 2), argmax (n_heat, n_heat)).
    """
    axis, pts = grid_points(n_heat)
    with torch.no_grad():
        logits = classifier(pts.float(), torch.full((len(pts),), float(t))).double()  # (G, C)
    logp = torch.log_softmax(logits, 1)
    _, apts = grid_points(n_arrows)
    grad = classifier_log_prob_grad(
        classifier, apts.float(), torch.full((len(apts),), float(t)), _labels(label, len(apts))
    ).double()  # (M, 2)
    return dict(
        axis=axis,
        prob=logp[:, label].exp().reshape(n_heat, n_heat).numpy(),
        argmax=logp.argmax(1).reshape(n_heat, n_heat).numpy(),
        arrow_xy=apts.numpy(),
        arrow_grad=grad.numpy(),
    )


def class_density(gmm, label: int | None, n: int = 81) -> tuple[np.ndarray, np.ndarray]:
    """The exact density q(x_0 | y) of one mixture component (label = component; None: the whole mixture)."""
    axis, pts = grid_points(n)
    g = gmm if label is None else gmm.subset(torch.arange(gmm.num_components) == int(label))
    return axis, g.log_prob(pts).exp().reshape(n, n).numpy()


def fidelity_diversity_2d(x0: np.ndarray, label: int, gmm, exact_classifier) -> dict:
    """Fidelity: share of samples the exact Bayes classifier p(y | x_0) assigns to the requested class.
    Diversity: sqrt(trace Cov(samples) / trace Sigma_y), 1 when the spread matches the class's own.
    Also the mean log q(x_0 | y) (higher = closer to the mode)."""
    x = torch.as_tensor(x0, dtype=torch.float64)
    with torch.no_grad():
        pred = exact_classifier(x, torch.zeros(len(x))).argmax(1)
    cov = np.cov(x.numpy().T)
    target = float(torch.trace(gmm.covs[int(label)]))
    comp = gmm.subset(torch.arange(gmm.num_components) == int(label))
    return dict(
        accuracy=float((pred == int(label)).double().mean()),
        diversity=float(math.sqrt(max(np.trace(cov), 0.0) / target)),
        log_lik=float(comp.log_prob(x).mean()),
    )


def nearest_label_share(x0: np.ndarray, data_x: np.ndarray, data_y: np.ndarray, label) -> dict:
    """For data without an exact density (two moons): the share of samples whose nearest data point carries
    `label` (a 1-nearest-neighbour classifier that needs no training), and each class's share.
    x0 (N, 2) samples; data_x (M, 2), data_y (M,) labelled data. label None: only the shares."""
    d = torch.cdist(torch.as_tensor(finite(x0), dtype=torch.float64), torch.as_tensor(data_x, dtype=torch.float64))
    nearest = np.asarray(data_y)[d.argmin(1).numpy()]  # (N,)
    shares = {int(c): float((nearest == c).mean()) for c in np.unique(data_y)}
    return {"share": None if label is None else shares.get(int(label), 0.0), "shares": shares}


def cfg_sweep_2d(
    model, s, gmm, exact_classifier, label: int, scales, n: int, seed: int, steps: int, null_label: int, progress=None
) -> dict:
    """Fidelity and diversity (fidelity_diversity_2d) of classifier-free-guided samples at each scale, same seeds."""
    rows = {"scale": [], "accuracy": [], "diversity": [], "log_lik": []}
    for k, w in enumerate(scales):
        x0 = guided_trajectory(cfg_model(model, w, null_label), s, label, n, seed, steps, stride=steps).x0
        m = fidelity_diversity_2d(finite(x0.numpy()), label, gmm, exact_classifier)
        rows["scale"].append(float(w))
        for key in ("accuracy", "diversity", "log_lik"):
            rows[key].append(m[key])
        if progress is not None:
            progress((k + 1) / len(scales))
    return {k: np.asarray(v) for k, v in rows.items()}


# --- MNIST ---------------------------------------------------------------------------------------------
MNIST_CLIP = (-1.0, 1.0)  # clip x0 and recompute eps (DESIGN.md: without it guided digits fall apart)


def mnist_samples(model, s, labels, seed: int, steps: int, progress=None):
    """(N, 1, 28, 28) digits from `model` (any guidance wrapper) with DDIM, x0 clipped to [-1, 1]."""
    labels = torch.as_tensor(labels).long()
    n = len(labels)
    cb = None
    if progress is not None:
        n_steps = steps

        def cb(step):
            progress((step.i + 1) / n_steps)

    x_T = _noise(n, (1, 28, 28), seed)
    y = None if labels is None else labels
    with fast_inference(x_T.device):  # bfloat16 convolutions where the CPU has them: half the time
        return sample_ddim(model, s, x_T, steps=steps, y=y, clip_x0=MNIST_CLIP, callback=cb)


def feature_diversity(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between samples of the same class in the judge's feature space."""
    out = []
    for c in np.unique(labels):
        f = features[labels == c]
        if len(f) > 1:
            d = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
            out.append(d[np.triu_indices(len(f), 1)].mean())
    return float(np.mean(out)) if out else float("nan")


def cfg_sweep_mnist(
    model, s, scales, per_class: int, seed: int, steps: int, judge, null_label: int = 10, progress=None
) -> dict:
    """Judge accuracy (fidelity) and judge-feature diversity of CFG digits at each scale, same seeds."""
    from toy_models.metrics import judge_accuracy, judge_features

    labels = torch.arange(10).repeat_interleave(per_class)
    acc, div = [], []
    for k, w in enumerate(scales):
        x = mnist_samples(cfg_model(model, w, null_label), s, labels, seed, steps)
        acc.append(judge_accuracy(x, labels, judge))
        div.append(feature_diversity(judge_features(x, judge), labels.numpy()))
        if progress is not None:
            progress((k + 1) / len(scales))
    return dict(scale=np.asarray(scales, dtype=float), accuracy=np.asarray(acc), diversity=np.asarray(div))


# =============================================================================================
# Figures
# =============================================================================================
def _density_contour(axis, dens, name="exact q(x₀ | y)"):
    return go.Contour(
        x=compact(axis),
        y=compact(axis),
        z=compact(dens, 4),
        name=name,
        showscale=False,
        contours=dict(coloring="lines"),
        line=dict(color=COLORS["truth"], width=1.5),
        ncontours=8,
        showlegend=True,
        hoverinfo="skip",
    )


def fig_samples_2d(
    x0: np.ndarray, title: str, density=None, paths: np.ndarray | None = None, data: np.ndarray | None = None
) -> go.Figure:
    """Samples x_0 (N, 2), optional exact density (axis, dens) as green contours, optional paths (K, M, 2)."""
    fig = go.Figure()
    if data is not None:
        fig.add_trace(scatter2d(data, "data", "data", 3, 0.25))
    if density is not None:
        fig.add_trace(_density_contour(*density))
    if paths is not None:
        p = compact(np.clip(finite(paths), -2 * HALF_WIDTH, 2 * HALF_WIDTH))
        for j in range(p.shape[1]):
            fig.add_trace(
                go.Scatter(
                    x=p[:, j, 0],
                    y=p[:, j, 1],
                    mode="lines",
                    showlegend=j == 0,
                    name="chains x_T → x₀",
                    line=dict(color=COLORS["x_t"], width=1),
                    opacity=0.6,
                )
            )
    x = compact(np.clip(finite(x0), -2 * HALF_WIDTH, 2 * HALF_WIDTH))
    fig.add_trace(
        go.Scatter(
            x=x[:, 0],
            y=x[:, 1],
            mode="markers",
            name="samples x₀",
            marker=dict(size=4, color=COLORS["learned"], opacity=0.7),
        )
    )
    layout(fig, title, "x₁ (data units)", "x₂ (data units)", height=430)
    return equal_axes(fig, HALF_WIDTH)


def fig_classifier_field(field: dict, label: int, t: float, ref: float = ARROW_REF) -> go.Figure:
    """Heatmap of p(y | x_t) and arrows along grad log p(y | x_t): direction, and a size that grows with
    log(1 + |grad|) on ONE scale for every t (full size at |grad| >= ref), so figures at two t compare."""
    fig = go.Figure()
    axis = compact(field["axis"])
    fig.add_trace(
        go.Heatmap(
            x=axis,
            y=axis,
            z=compact(field["prob"]),
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar=dict(title=f"p(y={label} | x_t)"),
            name="p(y | x_t)",
            hovertemplate="x₁ %{x:.2f}, x₂ %{y:.2f}: p = %{z:.3f}<extra></extra>",
        )
    )
    xy, g = field["arrow_xy"], finite(field["arrow_grad"], -1e3, 1e3)
    norm = np.linalg.norm(g, axis=1)
    angle = 90.0 - np.degrees(np.arctan2(g[:, 1], g[:, 0]))  # plotly: degrees clockwise from "up"
    size = 4.0 + 14.0 * np.minimum(1.0, np.log1p(norm) / math.log1p(ref))  # log-scaled, fixed scale
    fig.add_trace(
        go.Scatter(
            x=compact(xy[:, 0]),
            y=compact(xy[:, 1]),
            mode="markers",
            name=f"∇ log p(y | x_t) (size ~ log(1 + length), full at {ref:g})",
            marker=dict(
                symbol="arrow",
                angle=compact(angle, 1),
                size=compact(size, 2),
                color=COLORS["pred_x0"],
                line=dict(width=0),
            ),
            customdata=compact(norm),
            hovertemplate="|∇ log p| = %{customdata:.3g}<extra></extra>",
        )
    )
    layout(
        fig,
        f"Noisy classifier at t = {t:g}: p(y = {label} | x_t) and its gradient",
        "x₁ (data units)",
        "x₂ (data units)",
        height=450,
    )
    return equal_axes(fig, HALF_WIDTH)


def fig_sweep(
    sweep: dict, current: float | None = None, fidelity_label="accuracy of the classifier", diversity_label="diversity"
) -> go.Figure:
    """Fidelity and diversity against the guidance scale (two y axes)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=sweep["scale"],
            y=finite(sweep["accuracy"]),
            mode="lines+markers",
            name=fidelity_label,
            line=dict(color=COLORS["truth"]),
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=sweep["scale"],
            y=finite(sweep["diversity"]),
            mode="lines+markers",
            name=diversity_label,
            line=dict(color=COLORS["learned"]),
        ),
        secondary_y=True,
    )
    if current is not None:
        fig.add_vline(x=float(current), line=dict(color=COLORS["marker"], dash="dot"))
    layout(fig, "Fidelity vs diversity as the guidance scale grows", "guidance scale w", "", height=380)
    fig.update_yaxes(title_text=fidelity_label + " (fraction)", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title_text=diversity_label, secondary_y=True, rangemode="tozero")
    return fig


def tile_digits(images, cols: int = 8) -> np.ndarray:
    """(N, 1, 28, 28) -> one (rows*29-1, cols*29-1) image with 1-pixel black gaps, row-major."""
    return tile_images(images, cols, pad=1)[:-1, :-1]  # no gutter after the last row and column


def fig_digit_grid(images, title: str, cols: int = 8, height: int = 320) -> go.Figure:
    """A grid of digits as one heatmap (pixel values in [-1, 1])."""
    fig = go.Figure(image_heatmap(tile_digits(images, cols), name="digits"))
    layout(fig, title, "digit column (28 px each)", "digit row", height=height)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor="x")
    return fig


def tilted_density(gmm, label: int, w: float, n: int = 81) -> tuple[np.ndarray, np.ndarray]:
    """The density classifier-free guidance aims at (at t = 0): q(x | y)^w q(x)^(1 - w), normalised on the grid.

    Equal to q(x) p(y | x)^w / Z. w = 0: q(x); w = 1: q(x | y); w > 1: sharper than the class.
    """
    axis, pts = grid_points(n)
    comp = gmm.subset(torch.arange(gmm.num_components) == int(label))
    log_d = float(w) * comp.log_prob(pts) + (1.0 - float(w)) * gmm.log_prob(pts)  # (G,)
    d = torch.softmax(log_d, 0).reshape(n, n).numpy()
    cell = (axis[1] - axis[0]) ** 2
    return axis, d / cell


def fig_samples_with_target(x0: np.ndarray, exact, target, title: str) -> go.Figure:
    """Guided samples (orange) over the exact class density (green lines) and the guided target (dotted)."""
    fig = fig_samples_2d(x0, title, density=exact)
    axis, d = target
    fig.add_trace(
        go.Contour(
            x=compact(axis),
            y=compact(axis),
            z=compact(d, 4),
            name="target q(x|y)^w q(x)^(1−w)",
            showscale=False,
            contours=dict(coloring="lines"),
            ncontours=6,
            showlegend=True,
            line=dict(color=COLORS["marker"], width=1, dash="dot"),
            hoverinfo="skip",
        )
    )
    return fig
