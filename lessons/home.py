"""The home page's one-screen story: data -> noise -> data.

Forward: the exact q(x_t | x_0) (Ho et al. eq. 4). Back: the deterministic DDIM sampler
(Song et al. 2021, eq. 12) driven by the exact optimal noise predictor of the point set itself
(toy_models.gmm.AnalyticModel on GaussianMixture.from_points), so no training is needed and the
picture is the reverse of the forward process for that finite set, up to DDIM's discretisation: the
points re-form on (or, with few steps, close to) points of the set. No streamlit here.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from toy_models.diffusion import q_sample
from toy_models.schedules import Schedule

from .figures import animation_controls, equal_axes, layout, scatter2d
from .forward import animation_times

STORY = (
    "A diffusion model learns to **undo noise**. The forward process blurs data into pure Gaussian "
    "noise in many small steps — no learning involved. A network learns each small step backwards; "
    "run backwards from fresh noise, it turns the noise into samples that look like the data. Press ▶ below: "
    "the points dissolve and then re-form, driven here by the exact answer for this very set of points.\n\n"
    "**A perfect network would only copy.** The exact denoiser of a finite training set knows nothing but "
    "those points: the distribution it reverses is a mixture of point masses, one per training point, so its "
    "reverse chain ends on training points (run with all T = 1000 steps, every sample lands on one; "
    "the at most 50 DDIM steps drawn here land close to them). A trained network makes new data because it is *not* "
    "exact: it is a "
    "smooth function with a built-in bias toward simple answers, with too few parameters and too few "
    "training steps to memorise every point, so it fills in the space between them. Give a large network a "
    "small training set and it does memorise: it reproduces training examples."
)


def story_frames(points: torch.Tensor, s: Schedule, n_frames: int = 14, seed: int = 0):
    """Frames of data -> noise -> data for points (n, 2): (frames (F, n, 2), labels [str] * F).

    Forward frames use one eps per point (eq. 4 at growing t); the reverse frames are the states
    of DDIM (eta = 0) from that x_T with the exact noise predictor of the point set.
    """
    from toy_models.gmm import AnalyticModel, GaussianMixture
    from toy_models.samplers import run_with_trajectory, sample_ddim

    g = torch.Generator().manual_seed(int(seed))
    x0 = points.to(torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    times = animation_times(s.T, n_frames)
    fwd = [q_sample(s, x0, t, noise=eps).numpy() for t in times]
    model = AnalyticModel(GaussianMixture.from_points(x0), s)
    steps = min(50, s.T)  # enough DDIM steps to land on the points; about n_frames of them kept
    traj = run_with_trajectory(
        sample_ddim, model, s, torch.as_tensor(fwd[-1]), steps=steps, stride=max(1, steps // n_frames)
    )
    back = [x.numpy() for x in traj.xs[1:]]
    labels = [f"forward: t = {t}" for t in times] + [f"reverse: t = {int(round(float(t)))}" for t in list(traj.ts[1:])]
    return np.stack(fwd + back), labels[: len(fwd) + len(back)]


def fig_story(frames: np.ndarray, labels: list[str], half_width: float = 3.5) -> go.Figure:
    """The data -> noise -> data animation (frames (F, n, 2)), played in the browser."""
    fig = go.Figure([scatter2d(frames[0], "x_t", "x_t")])
    fig.frames = [
        go.Frame(data=[scatter2d(f, "x_t", "x_t")], name=str(i), layout=dict(title_text=lab))
        for i, (f, lab) in enumerate(zip(frames, labels))
    ]
    layout(fig, labels[0], "x₁", "x₂", height=420, showlegend=False)
    animation_controls(fig, [f.name for f in fig.frames], slider_prefix=None, bottom=90)
    return equal_axes(fig, half_width)


def digit_times(T: int, k: int = 6) -> list[int]:
    """k times from 0 to T for a row of digits, spaced by the square root (fast change early)."""
    return sorted(set(int(round(T * (i / (k - 1)) ** 2)) for i in range(k))) if k > 1 else [0]


def noised_digit_row(img: torch.Tensor, s: Schedule, times: list[int], seed: int = 0) -> np.ndarray:
    """One digit (1, 28, 28) at each time with the same noise: (K, 28, 28)  (eq. 4)."""
    g = torch.Generator().manual_seed(int(seed))
    x0 = img.to(torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return np.stack([q_sample(s, x0[None], t, noise=eps[None])[0, 0].numpy() for t in times])
