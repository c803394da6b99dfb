"""Lesson 3 — the reverse Markov chain: why small steps, the posterior given x_0, every step of the chain.

The computations return plain numpy arrays or small dataclasses; the figure builders turn them
into plotly figures. No streamlit here (views/reverse_chain.py renders).

Read beside Ho, Jain & Abbeel (2020), eqs. 1, 6-7, 11 and Algorithm 2; Sohl-Dickstein et al.
(2015) section 2.2 (why small steps make the reverse step Gaussian); Song, Meng & Ermon (2021)
eq. 12 (DDIM). Exact answers come from toy_models.gmm (the Gaussian-mixture ground truth).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from toy_models.diffusion import q_posterior_mean_variance
from toy_models.gmm import (  # noqa: F401
    GaussianMixture,
    MixtureEpsModel,
    gaussian_fit,
    kl_mixture_to_gaussian,
    reverse_conditional,
)
from toy_models.guidance import null_labels
from toy_models.networks import fast_inference
from toy_models.samplers import run_with_trajectory, sample_ddim, sample_ddpm
from toy_models.schedules import MAX_T, Schedule, make_schedule
from toy_models.shapes import check_int

from .figures import (
    COLORS,
    DIGIT_COLORSCALE,
    animation_controls,
    compact,
    equal_axes,
    fast_figure,
    finite,
    layout,
    layout_dict,
    legend_inside,
    panel_axes,
    panels,
    points,
    scatter2d,
    tile_images,
)

# --- narrative ------------------------------------------------------------------------------------
INTRO = (
    "Run the noise backwards: a chain of Gaussian steps x_T → … → x_0. First see **why the steps must be "
    "small**: the exact reverse step q(x_{t−1} | x_t) is close to a Gaussian only when β_t is small."
)
WHY_GAUSSIAN = (
    "**Why a small step is nearly Gaussian.** Bayes' rule gives q(x_{t−1} | x_t) ∝ q(x_t | x_{t−1}) "
    "q_{t−1}(x_{t−1}). As a function of x_{t−1}, the first factor is a Gaussian of width √(β_t/α_t) around "
    "x_t/√α_t. When β_t is small, log q_{t−1} is nearly linear over that width, and a Gaussian times the "
    "exponential of a linear function is again a Gaussian, shifted along the gradient ∇log q. Worked out:"
)
EQ_WHY = (
    r"q(x_{t-1}\mid x_t)\approx\mathcal{N}\!\Big(x_{t-1};\ "
    r"\frac{x_t+\beta_t\,\nabla\log q_t(x_t)}{\sqrt{\alpha_t}},\ \beta_t I\Big)"
)
WHY_GAUSSIAN_AFTER = (
    "The mean here is exact for every β_t (Tweedie's formula applied to x_t = √α_t x_{t−1} + √β_t ε); "
    "only the variance is approximate: the exact covariance is (β_t/α_t)(I + β_t ∇²log q_t(x_t)), which is "
    "β_t I up to terms of order β_t². Two things follow. The network only has to learn ∇log q_t, the **score** "
    "(lesson 5: predicting the noise is the same thing), and σ_t² = β_t is a natural variance for the learned "
    "step. With big steps the β_t² terms are not small and the exact step can have several peaks, which no "
    "Gaussian fits: see it below."
)
SMALL_STEPS = (
    "On the Gaussian-mixture data q(x_{t−1} | x_t) is known exactly (Bayes' rule on a mixture, "
    "`reverse_conditional`). Here x_t sits at a fixed noise level of the sidebar schedule and one reverse "
    "step covers 1/T of the way to x_T: the slider **steps the noise is cut into (T)** changes only the "
    "step size. Left: the exact step, with the dashed circle of the small-step Gaussian above (2 sd) and the "
    "dotted ellipse of the best Gaussian fit; right: that best fit."
)
LOOK_STEP = (
    "Look for: with 2 steps the exact density has several separate peaks and both Gaussians miss them; "
    "with 1000 steps it is one round blob and the dashed circle lies on the dotted ellipse."
)
LOOK_PICK = "Look for: where the chosen x_t (×) sits among the samples of q(x_t); click a sample to move it there."
LOOK_KL = (
    "Look for: every curve falls steeply as β_t shrinks (a straight line on these log axes is a power law); "
    "the small-step Gaussian's (orange) stays above the best Gaussian's, since its variance is right only "
    "up to O(β_t²)."
)
CHAIN = (
    "Each step asks the model for the noise ε_θ(x_t, t), turns it into a predicted x̂_0, moves to the "
    "posterior mean μ_θ = μ̃_t(x̂_0, x_t) (the arrows) and adds fresh noise σ_t z with σ_t² = β̃_t. Left: the "
    "**exact** model (the Bayes-optimal noise predictor of the Gaussian mixture, for any schedule); right: a "
    "**learned** network. Points, predictions and arrows are the sampler's own (`run_with_trajectory`)."
)
LOOK_CHAIN = (
    "Look for: early on every x̂_0 sits near the middle of the data (an average over all clusters); "
    "as t falls they spread out onto the clusters, and the points x_t follow them."
)
LOOK_ANIM = (
    "Look for: the x̂_0 cloud starting as one small blob at the centre and splitting into clusters as t "
    "falls, while the cloud of x_t keeps about the same size throughout."
)
LOOK_PATHS = (
    "Look for: long noisy moves early in each path (β_t grows with t) and short ones at its end, "
    "where it settles onto the data."
)
MNIST_TEXT = (
    "The same chain on digits, run **without a label**: the shipped digit network was trained with a null "
    "label 10% of the time, and with the null label it predicts the noise of all digits together, so the chain "
    "itself decides which digit to draw. The predicted x̂_0 starts as a grey average of many digits and "
    "sharpens as t falls. DDIM (below) takes big deterministic steps on a strided grid of the same model; "
    "DDPM takes all T noisy steps."
)
DDIM_TEXT = (
    "**DDIM** (Song, Meng & Ermon 2021) uses the same trained ε_θ with another reverse process. From x_t it "
    "forms x̂_0 and jumps to the next time t′ < t of any grid T = τ_K > … > τ_0 = 0 (their eq. 12, with t′ "
    "for t − 1):"
)
EQ_DDIM = (
    r"\begin{aligned}x_{t'}&=\sqrt{\bar\alpha_{t'}}\,\hat x_0+\sqrt{1-\bar\alpha_{t'}-\sigma_t^2}\;"
    r"\epsilon_\theta(x_t,t)+\sigma_t z,\\ "
    r"\sigma_t&=\eta\,\sqrt{\frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\,"
    r"\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{t'}}}\end{aligned}"
)
DDIM_AFTER = (
    "η = 1 with t′ = t − 1 is the DDPM chain above with σ_t² = β̃_t. η = 0 adds no noise: the sampler is "
    "deterministic, and each step is exactly an Euler step of the probability-flow ODE written in the "
    "variables x̄ = x/√ᾱ and κ = √((1 − ᾱ)/ᾱ), where it reads dx̄ = ε_θ dκ (Song, Meng & Ermon 2021, "
    "section 4.3). An ODE solver's error depends on how smoothly its path bends, not on how Gaussian a noisy "
    "step is, which is why DDIM can skip most of the grid: this page runs it with η = 0 on a strided grid of "
    "a few tens of steps."
)
VARIANCE_TEXT = (
    "DDPM's variance σ_t² can be β̃_t or β_t. Ho et al. (2020, section 3.2) note that β̃_t is the optimal "
    "choice when x_0 is one fixed point and β_t when x_0 ~ N(0, I), the two extremes, and that both gave "
    "similar samples."
)
LOOK_DIGITS = (
    "Look for: x̂_0 is a grey average in the top rows, takes the shape of a digit in the middle "
    "rows and gets its fine strokes in the last ones."
)
LOOK_FINAL = (
    "Look for: the same starting noise x_T need not give the same digit under both samplers: DDPM adds "
    "fresh noise at every step, DDIM none."
)
EQ_REVERSE = r"p_\theta(x_{t-1}\mid x_t) = \mathcal{N}\!\big(x_{t-1};\ \mu_\theta(x_t,t),\ \sigma_t^2 I\big)"
EQ_POSTERIOR = (
    r"\begin{aligned}q(x_{t-1}\mid x_t,x_0)&=\mathcal{N}(\tilde\mu_t,\tilde\beta_t I),\\ "
    r"\tilde\mu_t&=\frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0+"
    r"\frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\\ "
    r"\tilde\beta_t&=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t\end{aligned}"
)
EQ_MEAN = (
    r"\hat x_0=\frac{x_t-\sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t,t)}{\sqrt{\bar\alpha_t}},\quad "
    r"\mu_\theta(x_t,t)=\tilde\mu_t(\hat x_0, x_t),\quad x_{t-1}=\mu_\theta+\sigma_t z"
)
EQ_KL = r"\mathrm{KL}\big(q(x_{t-1}\mid x_t)\,\|\,\mathcal{N}(m, S)\big),\ (m, S) = \text{mean and covariance of } q"
LOOK_POSTERIOR = (
    "Look for: the mean μ̃_t on the segment from x_t to x_0, close to x_t at large t and on x_0 "
    "at t = 1; the circles shrink to a point at t = 1."
)
TRY_SMALL = (
    "**Try this:** the default view (2 steps, x_t at the origin) shows one peak of the exact step per "
    "cluster. Then set **steps the noise is cut into (T)** to 1000: one round blob, and the KL printed "
    "above falls by orders of magnitude."
)
TRY_CHAIN = (
    "**Try this:** move the step from t = T/2 down to t = 0 and watch the spread of x̂_0 printed under "
    "the figure grow to the data's. Then set the sidebar **T** to 2: the exact model now takes two big "
    "Gaussian steps, its samples pile up between the clusters, and their mean log-density under the "
    "mixture (printed under the paths) falls far below the data's."
)
TRY_MNIST = (
    "**Try this:** with the default 20 DDIM steps, move **kept step** until the single grid's title says "
    "t = 900, then t = 300: at t = 900 x̂_0 is still a grey average, at t = 300 most digits are chosen "
    "(the judge's numbers above). Then set **DDIM steps** to 5 and compare its digits with DDPM's."
)


def posterior_text(s: Schedule) -> str:
    """The posterior paragraph, with beta-tilde_t / beta_t read off the schedule in force."""
    r = variance_ratio(s)
    t99 = int(np.argmax(r >= 0.99)) if (r[1:] >= 0.99).any() else None
    cmp = f"β̃_1 = 0 (given x_0 and x_1 the step is certain), β̃_2 = {r[2]:.2f} β_2" if s.T >= 2 else "β̃_1 = 0"
    rest = (
        f", and from t = {t99} on β̃_t is within 1% of β_t (β̃_T/β_T = {r[-1]:.5g})"
        if t99 is not None
        else f"; it never comes within 1% of β_t on this schedule (β̃_T/β_T = {r[-1]:.3g})"
    )
    return (
        "Given the clean x_0 as well, the reverse step is a plain Gaussian whatever the step size: "
        "q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) (Ho et al. 2020, eqs. 6-7). Its mean is a weighted sum of "
        "x_0 and x_t. Its variance β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) is below β_t, much below at small t: on "
        f"the schedule in force ({s.describe()}) {cmp}{rest}. Training teaches the network to predict x_0 "
        "(or the noise) so that it can use this formula without knowing x_0."
    )


def try_posterior(s: Schedule) -> str:
    """The posterior's 'Try this', with the weight of x_0 and beta-tilde_T / beta_T at t = T computed."""
    w = float(s.posterior_mean_coef1[s.T])
    r = variance_ratio(s)[s.T]
    end = (
        f"x_0 barely matters (its weight in the mean is {w:.2g}) and β̃_T/β_T = {r:.5g}"
        if w < 0.01
        else f"x_0 still matters (its weight in the mean is {w:.2g}: with so few steps the last one is big) and "
        f"β̃_T/β_T = {r:.3g}"
    )
    return f"**Try this:** set t = 1: the mean lands on x_0 itself. Set t = T = {s.T}: {end}."


VARIANCE_CHOICES = ("beta_tilde", "beta")  # sigma_t^2 of p_theta (Ho et al. section 3.2)
T_CHOICES = (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)  # step counts of the KL-vs-step-size curve


# =============================================================================================
# 1. Why small steps: the exact reverse step and its best Gaussian fit
# =============================================================================================
def rescaled_schedule(ref: Schedule, T: int) -> Schedule:
    """The schedule `ref` cut into T steps with the SAME total noise: abar^(T)_k = abar_ref(k T_ref / T).

    abar_ref(.) is the continuous-time alpha-bar of the reference (Schedule.alpha_bar), so every
    T gives a chain from the same data to the same x_T distribution; only the step size changes:
    beta_k = 1 - abar_k / abar_{k-1} (Ho et al. eq. 4 inverted).
    """
    T = check_int("T", T, 1, MAX_T)
    k = torch.arange(T + 1, dtype=torch.float64) * (ref.T / T)
    abar = ref.alpha_bar(k)  # (T+1,), abar[0] = 1
    betas = (1.0 - abar[1:] / abar[:-1]).clamp(1e-12, 1 - 1e-9)
    return make_schedule("custom", T, betas=betas)


def step_for_level(T: int, level: float) -> int:
    """The step t in 1..T whose x_t sits at the fraction `level` in (0, 1] of the chain: round(level T)."""
    if not 0.0 < float(level) <= 1.0:
        raise ValueError(f"level must lie in (0, 1]; got {level!r}")
    return int(min(max(round(float(level) * T), 1), T))


def one_step_schedule(ref: Schedule, T: int, level: float) -> Schedule:
    """One reverse step of a T-step chain of the reference noise, ending exactly at x_t's level.

    x_t sits at continuous time u T_ref (u = level), x_{t-1} at (u - 1/T) T_ref (0 if negative):
    the step covers 1/T of the whole chain, as a step of `rescaled_schedule(ref, T)` does, but with
    x_t at the same noise level for every T. Returned as a custom schedule whose last step t = its T
    (2 steps: 0 -> (u - 1/T), (u - 1/T) -> u; 1 step when u <= 1/T).
    """
    T = check_int("T", T, 1, MAX_T)
    if not 0.0 < float(level) <= 1.0:
        raise ValueError(f"level must lie in (0, 1]; got {level!r}")
    u, h = float(level), 1.0 / int(T)
    times = [0.0, u] if u - h <= 1e-12 else [0.0, u - h, u]
    abar = ref.alpha_bar(torch.tensor(times, dtype=torch.float64) * ref.T)
    betas = (1.0 - abar[1:] / abar[:-1]).clamp(1e-12, 1 - 1e-9)
    return make_schedule("custom", len(betas), betas=betas)


def variance_ratio(s: Schedule) -> np.ndarray:
    """(T + 1,) beta-tilde_t / beta_t = (1 - abar_{t-1}) / (1 - abar_t) (Ho et al. eq. 7), float64; entry 0 is nan."""
    ab = s.alphas_cumprod.double().numpy()
    out = np.full(s.T + 1, np.nan)
    out[1:] = (1.0 - ab[:-1]) / (1.0 - ab[1:])
    return out


def small_step_gaussian(gmm: GaussianMixture, s: Schedule, x_t, t: int) -> tuple[np.ndarray, float]:
    """(mean (D,), variance): the small-step Gaussian N((x_t + beta_t grad log q_t(x_t)) / sqrt(alpha_t), beta_t I).

    The score is the mixture's exact one (GaussianMixture.score of q_t). The mean equals E[x_{t-1} | x_t]
    for every beta_t (Tweedie's formula for x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps); the exact
    covariance is (beta_t / alpha_t)(I + beta_t grad^2 log q_t(x_t)), so beta_t I is right up to O(beta_t^2).
    """
    t = check_int("t", t, 1, s.T, "T")
    x = torch.as_tensor(np.asarray(x_t, dtype=np.float64)).reshape(1, -1)
    beta, alpha = float(s.betas[t]), float(s.alphas[t])
    score = gmm.score(x, alpha_bar=float(s.alphas_cumprod[t]))
    return ((x + beta * score) / math.sqrt(alpha))[0].numpy(), beta


def count_peaks(log_density: np.ndarray, floor: float = 1e-3) -> int:
    """Local maxima of a density on a grid (a point above its 8 neighbours), ignoring those below floor x the peak."""
    z = np.asarray(log_density, dtype=np.float64)
    pad = np.pad(z, 1, constant_values=-np.inf)
    H, W = z.shape
    top = np.ones_like(z, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                top &= z > pad[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
    return int((top & (z > z.max() + math.log(floor))).sum())


@dataclass
class ReverseStep:
    """The exact q(x_{t-1} | x_t) at one point x_t, its Gaussian fit, and both on a grid."""

    T: int  # number of steps the total noise is cut into
    t: int  # the step x_t -> x_{t-1}
    beta_t: float  # the step's variance
    abar_t: float  # alpha-bar at t
    x_t: np.ndarray  # (2,) the conditioning point
    exact: GaussianMixture  # q(x_{t-1} | x_t), a mixture
    fit_mean: np.ndarray  # (2,) the moment-matched Gaussian's mean
    fit_cov: np.ndarray  # (2, 2) its covariance
    kl: float  # KL(exact || fit) in nats (quadrature)
    gx: np.ndarray  # (n,) grid of x_{t-1} first coordinate
    gy: np.ndarray  # (n,) grid of the second coordinate
    log_exact: np.ndarray  # (n, n) log q on the grid, [iy, ix]
    log_fit: np.ndarray  # (n, n) log N(fit) on the grid, [iy, ix]
    small_mean: np.ndarray  # (2,) the small-step Gaussian's mean (x_t + beta_t score) / sqrt(alpha_t)
    small_var: float  # its variance, beta_t
    kl_small: float  # KL(exact || small-step Gaussian) in nats (quadrature)
    n_peaks: int  # local maxima of the exact density on the grid

    @property
    def n_modes_weight(self) -> int:
        """How many mixture components carry at least 5% of the weight (a rough mode count)."""
        return int((self.exact.weights >= 0.05).sum())


def _gauss_logpdf(pts: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return GaussianMixture(torch.ones(1), mean[None], cov[None]).log_prob(pts)


def reverse_step(
    gmm: GaussianMixture, ref: Schedule, T: int, level: float, x_t, n_grid: int = 90, nodes: int = 24
) -> ReverseStep:
    """Exact q(x_{t-1} | x_t) (toy_models.gmm.reverse_conditional) for one step of a T-step chain.

    x_t sits at the fraction `level` of the reference chain and the step covers 1/T of it
    (`one_step_schedule`); t = step_for_level(T, level) names it. The fit is the moment-matched Gaussian
    (argmin KL(q || N));
    the small-step Gaussian is `small_step_gaussian`; both KLs are by Gauss-Hermite quadrature per component
    (exact densities). The grid covers the
    fit's mean +- 4.5 sd (at least +- 0.05), so both panels share axes.
    """
    s1 = one_step_schedule(ref, T, level)  # the step itself, x_t exactly at `level`
    x = torch.as_tensor(np.asarray(x_t, dtype=np.float64)).flatten()
    if x.shape != (2,) or not torch.isfinite(x).all():
        raise ValueError(f"x_t must be a finite 2D point; got {x_t!r}")
    exact = reverse_conditional(gmm, s1, x, s1.T)
    mean, cov = gaussian_fit(exact)
    kl, _ = kl_mixture_to_gaussian(exact, mean, cov, method="quadrature", nodes=nodes)
    half = max(4.5 * float(cov.diagonal().max().sqrt()), 0.05)
    gx = torch.linspace(float(mean[0]) - half, float(mean[0]) + half, n_grid, dtype=torch.float64)
    gy = torch.linspace(float(mean[1]) - half, float(mean[1]) + half, n_grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)  # (n*n, 2)
    sm, sv = small_step_gaussian(gmm, s1, x, s1.T)
    kl_small, _ = kl_mixture_to_gaussian(
        exact, torch.as_tensor(sm), sv * torch.eye(2, dtype=torch.float64), method="quadrature", nodes=nodes
    )
    log_exact = exact.log_prob(pts).reshape(n_grid, n_grid).numpy()
    return ReverseStep(
        T=int(T),
        t=step_for_level(T, level),
        beta_t=float(s1.betas[s1.T]),
        abar_t=float(s1.alphas_cumprod[s1.T]),
        x_t=x.numpy(),
        exact=exact,
        fit_mean=mean.numpy(),
        fit_cov=cov.numpy(),
        kl=max(kl, 0.0),
        gx=gx.numpy(),
        gy=gy.numpy(),
        log_exact=log_exact,
        log_fit=_gauss_logpdf(pts, mean, cov).reshape(n_grid, n_grid).numpy(),
        small_mean=sm,
        small_var=sv,
        kl_small=max(kl_small, 0.0),
        n_peaks=count_peaks(log_exact),
    )


@dataclass
class KLCurve:
    """KL(q(x_{t-1} | x_t) || Gaussian fit) against the number of steps T at one noise level."""

    Ts: np.ndarray  # (M,) numbers of steps
    betas: np.ndarray  # (M,) the step's beta_t at that level
    kl_point: np.ndarray  # (M,) KL at the chosen x_t, nats
    kl_mean: np.ndarray  # (M,) KL averaged over x_t ~ q(x_t), nats
    n_points: int  # how many x_t the average uses
    kl_small_mean: np.ndarray  # (M,) KL to the small-step Gaussian N(mean, beta_t I), averaged like kl_mean


def kl_vs_steps(
    gmm: GaussianMixture,
    ref: Schedule,
    level: float,
    x_t,
    Ts=T_CHOICES,
    n_points: int = 8,
    seed: int = 0,
    nodes: int = 16,
) -> KLCurve:
    """KL between the exact reverse step and its Gaussian fit for each T, exactly (quadrature).

    x_t sits at the same noise level for every T (`one_step_schedule`); only the step size changes.
    kl_mean averages over n_points draws x_t ~ q(x_t), the same draws for every T.
    """
    g = torch.Generator().manual_seed(int(seed))
    x0, _ = gmm.sample(n_points, generator=g)  # (n, 2)
    eps = torch.randn(n_points, 2, generator=g, dtype=torch.float64)
    Ts = [int(T) for T in Ts]
    betas, kp, km, ks = [], [], [], []
    x = torch.as_tensor(np.asarray(x_t, dtype=np.float64)).flatten()
    for T in Ts:
        s = one_step_schedule(ref, T, level)
        t = s.T
        a, b = float(s.alphas_cumprod[t]), float(s.betas[t])
        betas.append(b)
        vals, small = [], []
        for i, xi in enumerate([x] + list(math.sqrt(a) * x0 + math.sqrt(1 - a) * eps)):
            c = reverse_conditional(gmm, s, xi, t)
            m, S = gaussian_fit(c)
            vals.append(max(kl_mixture_to_gaussian(c, m, S, method="quadrature", nodes=nodes)[0], 0.0))
            if i:
                sm, sv = small_step_gaussian(gmm, s, xi, t)
                cov_small = sv * torch.eye(2, dtype=torch.float64)
                small.append(
                    max(
                        kl_mixture_to_gaussian(c, torch.as_tensor(sm), cov_small, method="quadrature", nodes=nodes)[0],
                        0.0,
                    )
                )
        kp.append(vals[0])
        km.append(float(np.mean(vals[1:])))
        ks.append(float(np.mean(small)))
    return KLCurve(np.array(Ts), np.array(betas), np.array(kp), np.array(km), int(n_points), np.array(ks))


# =============================================================================================
# 2. The posterior given x_0
# =============================================================================================
@dataclass
class PosteriorView:
    """q(x_{t-1} | x_t, x_0) = N(mean, var I) (Ho et al. eqs. 6-7) for one pair (x_0, x_t)."""

    t: int  # the step
    x0: np.ndarray  # (2,)
    x_t: np.ndarray  # (2,)
    mean: np.ndarray  # (2,) mu-tilde_t
    var: float  # beta-tilde_t
    beta_t: float  # beta_t, for comparison
    coef1: float  # weight of x_0 in the mean
    coef2: float  # weight of x_t in the mean

    @property
    def fraction_to_x0(self) -> float:
        """Where the mean sits on the segment x_t -> x_0: 0 at x_t, 1 at x_0 (projection)."""
        d = self.x0 - self.x_t
        n2 = float(d @ d)
        return float((self.mean - self.x_t) @ d / n2) if n2 > 0 else float("nan")


def posterior_view(s: Schedule, x0, x_t, t: int) -> PosteriorView:
    """Mean and variance of q(x_{t-1} | x_t, x_0) from toy_models.diffusion.q_posterior_mean_variance."""
    t = check_int("t", t, 1, s.T, "T")
    a = torch.as_tensor(np.asarray(x0, dtype=np.float64)).reshape(1, 2)
    b = torch.as_tensor(np.asarray(x_t, dtype=np.float64)).reshape(1, 2)
    mean, var, _ = q_posterior_mean_variance(s, a, b, t)
    return PosteriorView(
        t,
        a[0].numpy(),
        b[0].numpy(),
        mean[0].numpy(),
        float(var.flatten()[0]),
        float(s.betas[t]),
        float(s.posterior_mean_coef1[t]),
        float(s.posterior_mean_coef2[t]),
    )


# =============================================================================================
# 3. The chain, every step
# =============================================================================================
def q_t_cloud(gmm: GaussianMixture, s: Schedule, level: float, n: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """(n draws of q(x_t) (n, D), alpha-bar) for the mixture at the real time t = level * T:
    x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps  (Ho et al. eq. 4, abar interpolated as in Schedule.alpha_bar)."""
    a = float(s.alpha_bar(torch.tensor(level * s.T)))
    g = torch.Generator().manual_seed(int(seed))
    x0, _ = gmm.sample(n, generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return (math.sqrt(a) * x0 + math.sqrt(1 - a) * eps).numpy(), a


@dataclass
class ChainRun:
    """A DDPM chain of n points kept at every step: exactly what the sampler did."""

    ts: np.ndarray  # (K,) times from T down to 0
    xs: np.ndarray  # (K, n, D) float32 states; xs[0] = x_T, xs[-1] = the sample x_0
    pred_x0: np.ndarray  # (K-1, n, D) float32 predicted x_0 at each state but the last
    seconds: float  # wall time of the sampler run

    def index_of(self, t: int) -> int:
        """Row k of the kept state closest to time t."""
        return int(np.abs(self.ts - float(t)).argmin())


def ddpm_chain(
    model, s: Schedule, n: int, seed: int = 0, variance: str = "beta_tilde", stride: int = 1, device: str = "cpu"
) -> ChainRun:
    """Ho et al. (2020) Algorithm 2 for n points from x_T ~ N(0, I), every step kept (run_with_trajectory).

    x_T is drawn with torch.Generator().manual_seed(seed), the step noise with seed + 1: the same
    seed gives the same numbers as calling sample_ddpm directly with those generators.
    """
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= 100_000:
        raise ValueError(f"n must be an integer from 1 to 100000; got {n!r}")
    x_T = torch.randn(int(n), 2, generator=torch.Generator().manual_seed(int(seed))).to(device)  # (n, 2)
    t0 = time.perf_counter()
    with torch.no_grad():
        tr = run_with_trajectory(
            sample_ddpm,
            model,
            s,
            x_T,
            stride=stride,
            variance=variance,
            generator=_device_generator(device, int(seed) + 1),
        )
    return ChainRun(tr.ts.numpy(), tr.xs.float().numpy(), tr.pred_x0.float().numpy(), time.perf_counter() - t0)


def _device_generator(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def mean_drift(s: Schedule, x_t: np.ndarray, pred_x0: np.ndarray, t: int) -> np.ndarray:
    """mu_theta(x_t, t) - x_t with mu_theta = mu-tilde_t(x0_hat, x_t) (Ho et al. eq. 7, 11); (n, D)."""
    if not 1 <= int(t) <= s.T:
        raise ValueError(f"t must be an integer from 1 to T = {s.T}; got {t!r}")
    xt = torch.as_tensor(x_t, dtype=torch.float64)
    mean, _, _ = q_posterior_mean_variance(s, torch.as_tensor(pred_x0, dtype=torch.float64), xt, int(t))
    return (mean - xt).numpy()


def spread(x: np.ndarray) -> float:
    """The spread of a cloud of points (n, D): the root-mean-square of its per-coordinate standard deviations."""
    return float(np.sqrt(np.asarray(x, dtype=np.float64).var(0).mean()))


def mean_log_density(gmm: GaussianMixture, x: np.ndarray) -> float:
    """Mean of log q(x) over the points x (n, D) under the mixture, nats (finite points only)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x).all(1)]
    return float(gmm.log_prob(torch.as_tensor(x)).mean()) if len(x) else float("nan")


# =============================================================================================
# 4. MNIST: several digits through the chain
# =============================================================================================
@dataclass
class DigitChain:
    """A chain of B digits, kept every `stride` steps, stored as uint8 to bound memory."""

    sampler: str  # "ddpm" or "ddim"
    steps: int  # model calls made
    ts: np.ndarray  # (K,) times of the kept states, T .. 0
    xs: np.ndarray  # (K, B, 28, 28) uint8 states (0 = -1, 255 = +1; clipped)
    pred_x0: np.ndarray  # (K-1, B, 28, 28) uint8 predicted x_0
    seconds: float  # wall time of the sampler run

    @property
    def nbytes(self) -> int:
        return int(self.xs.nbytes + self.pred_x0.nbytes)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] -> uint8 0..255 (values outside are clipped)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def from_uint8(u: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 in [-1, 1]."""
    return u.astype(np.float32) / 127.5 - 1.0


def digit_chain(
    model,
    s: Schedule,
    labels,
    seed: int = 0,
    sampler: str = "ddim",
    steps: int | None = 20,
    variance: str = "beta_tilde",
    max_kept: int = 101,
    progress=None,
    device: str = "cpu",
) -> DigitChain:
    """Digits of the given labels (B,) from the same x_T (seed): DDPM (all T steps) or DDIM (`steps`).

    labels: a (B,) sequence of class labels, or an int B for B digits without a label (guidance.null_labels).

    Keeps at most max_kept states (stride = ceil(steps / (max_kept - 1))), as uint8: memory is
    about 2 * max_kept * B * 784 bytes whatever T. progress(fraction) is called after each step.
    x0 estimates are clipped to [-1, 1] (images live there), as in Ho et al.'s sampler.
    """
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler must be 'ddpm' or 'ddim'; got {sampler!r}")
    if variance not in VARIANCE_CHOICES:
        raise ValueError(f"variance must be one of {VARIANCE_CHOICES}; got {variance!r}")
    if isinstance(labels, (int, np.integer)) and not isinstance(labels, bool):  # n digits without a label
        B, y = int(labels), null_labels(model, int(labels))
        y = None if y is None else y.to(device)
    else:
        y = torch.as_tensor(labels).long().flatten().to(device)  # (B,)
        B = y.shape[0]
    if B < 1:
        raise ValueError(f"need at least one digit; got {labels!r}")
    n_steps = s.T if sampler == "ddpm" else int(steps)
    if not 1 <= n_steps <= s.T:
        raise ValueError(f"steps must be an integer from 1 to T = {s.T}; got {steps!r}")
    stride = max(1, math.ceil(n_steps / max(1, max_kept - 1)))
    x_T = torch.randn(B, 1, 28, 28, generator=torch.Generator().manual_seed(int(seed))).to(device)
    done = [0]

    def cb(_step):
        done[0] += 1
        if progress is not None:
            progress(done[0] / n_steps)

    # DDIM on the evenly spaced grid: the figure's rows are then evenly spaced in t, and t = 900 and 300,
    # which TRY_MNIST names, are steps of the default 20-step chain
    kw = dict(variance=variance) if sampler == "ddpm" else dict(steps=n_steps, grid="uniform")
    fn = sample_ddpm if sampler == "ddpm" else sample_ddim
    t0 = time.perf_counter()
    with torch.no_grad(), fast_inference(device):  # bfloat16 convolutions where native: half the time
        tr = run_with_trajectory(
            fn,
            model,
            s,
            x_T,
            stride=stride,
            y=y,
            clip_x0=(-1.0, 1.0),
            callback=cb,
            generator=_device_generator(device, int(seed) + 1),
            store_dtype=torch.float16,
            **kw,
        )
    secs = time.perf_counter() - t0
    return DigitChain(sampler, n_steps, tr.ts.numpy(), to_uint8(tr.xs[:, :, 0]), to_uint8(tr.pred_x0[:, :, 0]), secs)


def pick_rows(ts: np.ndarray, wanted) -> list[int]:
    """Row index of the kept time closest to each wanted time (duplicates removed, order kept)."""
    rows = []
    for w in wanted:
        k = int(np.abs(ts - float(w)).argmin())
        if k not in rows:
            rows.append(k)
    return rows


def mosaic(imgs: np.ndarray, pad: int = 2) -> np.ndarray:
    """(R, C, 28, 28) images -> one (R*(28+pad), C*(28+pad)) array with blank gutters (-1, or 0 for uint8)."""
    R, C, H, W = imgs.shape
    return tile_images(imgs.reshape(R * C, H, W), cols=C, pad=pad)


# =============================================================================================
# Figures
# =============================================================================================
def _ellipse(mean, cov, k: float = 2.0, n: int = 60) -> np.ndarray:
    """Points (n, 2) on the k-sd ellipse of N(mean, cov)."""
    lam, U = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    a = np.linspace(0, 2 * np.pi, n)
    circ = np.stack([np.cos(a), np.sin(a)], 1) * (k * np.sqrt(np.clip(lam, 0, None)))
    return np.asarray(mean) + circ @ U.T


def fig_reverse_step(r: ReverseStep) -> go.Figure:
    """Two heatmaps on the same x_{t-1} grid: the exact q(x_{t-1} | x_t) and its Gaussian fit."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        1,
        2,
        subplot_titles=(
            f"exact: {r.n_peaks} peak{'s' if r.n_peaks != 1 else ''}",
            f"best Gaussian: KL = {r.kl:.3g} nats",
        ),
        horizontal_spacing=0.08,
    )
    vmax = float(max(np.exp(r.log_exact).max(), np.exp(r.log_fit).max()))
    for col, (lg, name) in enumerate(((r.log_exact, "exact"), (r.log_fit, "Gaussian fit")), start=1):
        fig.add_trace(
            go.Heatmap(
                x=compact(r.gx, 4),
                y=compact(r.gy, 4),
                z=compact(np.exp(lg), 5),
                zmin=0,
                zmax=vmax,
                colorscale="Viridis",
                showscale=col == 2,
                name=name,
                colorbar=dict(title="density"),
                hovertemplate="x₁ %{x:.3f}<br>x₂ %{y:.3f}<br>density %{z:.3g}<extra></extra>",
            ),
            1,
            col,
        )
        e = _ellipse(r.fit_mean, r.fit_cov)
        fig.add_trace(
            go.Scatter(
                x=compact(e[:, 0]),
                y=compact(e[:, 1]),
                mode="lines",
                showlegend=False,
                name="fit: 2 sd",
                line=dict(color="white", dash="dot", width=1),
            ),
            1,
            col,
        )
        c = _ellipse(r.small_mean, r.small_var * np.eye(2))
        fig.add_trace(
            go.Scatter(
                x=compact(c[:, 0]),
                y=compact(c[:, 1]),
                mode="lines",
                showlegend=False,
                name="small-step Gaussian: 2 sd",
                line=dict(color="#ff7f0e", dash="dash", width=1.5),
            ),
            1,
            col,
        )
        fig.update_xaxes(title_text="x_t−1, first coordinate", row=1, col=col)
        fig.update_yaxes(
            title_text="x_t−1, second coordinate", row=1, col=col, scaleanchor=f"x{col if col > 1 else ''}"
        )
    # no legend (above the panels it ran into their titles): the title says what the lines are
    layout(
        fig,
        f"T = {r.T}: step t = {r.t}, β_t = {r.beta_t:.4g}<br><sup>white dotted: best Gaussian (2 sd)</sup>"
        f"<br><sup>orange dashed: N((x_t + β_t ∇log q_t)/√α_t, β_t I), KL = {r.kl_small:.3g} nats</sup>",
        height=450,
    )
    fig.update_layout(margin=dict(t=100))
    fig.update_xaxes(title_text="x_t−1, first coordinate")
    fig.update_yaxes(title_text="x_t−1, second coordinate")
    return fig


def fig_pick_xt(samples: np.ndarray, x_t, abar_t: float, half_width: float = 3.5) -> go.Figure:
    """Samples of q(x_t) at the chosen noise level with the chosen x_t marked (click a point to pick it)."""
    fig = go.Figure([scatter2d(samples, f"samples of q(x_t), ᾱ_t = {abar_t:.3g}", "x_t", 5, 0.45)])
    fig.add_trace(
        go.Scatter(
            x=[float(x_t[0])],
            y=[float(x_t[1])],
            mode="markers",
            name="chosen x_t",
            marker=dict(size=14, color=COLORS["marker"], symbol="x"),
        )
    )
    layout(fig, "Where is x_t? (click a point)", "x_t, first coordinate", "x_t, second coordinate", height=430)
    return equal_axes(legend_inside(fig), half_width)


def fig_kl_curve(c: KLCurve, T_now: int) -> go.Figure:
    """KL(exact || Gaussian fit) against the step's beta_t (log-log), one point per T."""
    fig = go.Figure()
    lab = [f"T = {T}" for T in c.Ts]
    fig.add_trace(
        go.Scatter(
            x=c.betas,
            y=np.maximum(finite(c.kl_mean), 1e-12),
            mode="lines+markers",
            text=lab,
            name=f"average over {c.n_points} x_t ~ q(x_t)",
            line=dict(color=COLORS["truth"]),
            hovertemplate="%{text}<br>β_t %{x:.3g}<br>KL %{y:.3g} nats<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=c.betas,
            y=np.maximum(finite(c.kl_point), 1e-12),
            mode="lines+markers",
            text=lab,
            name="at the chosen x_t",
            line=dict(color=COLORS["marker"], dash="dash"),
            hovertemplate="%{text}<br>β_t %{x:.3g}<br>KL %{y:.3g} nats<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=c.betas,
            y=np.maximum(finite(c.kl_small_mean), 1e-12),
            mode="lines+markers",
            text=lab,
            name="small-step Gaussian N(…, β_t I), same average",
            line=dict(color="#ff7f0e", dash="dot"),
            hovertemplate="%{text}<br>β_t %{x:.3g}<br>KL %{y:.3g} nats<extra></extra>",
        )
    )
    if T_now in c.Ts.tolist():
        i = c.Ts.tolist().index(T_now)
        fig.add_vline(x=float(c.betas[i]), line=dict(color="grey", dash="dot"))
    layout(
        fig,
        "How far is the exact reverse step from a Gaussian?",
        "step size β_t (log scale)",
        "KL(exact ‖ Gaussian), nats (log scale)",
        height=440,
        legend_below=True,
    )
    fig.update_layout(margin=dict(b=110))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def fig_posterior(p: PosteriorView, half_width: float = 3.5) -> go.Figure:
    """x_0, x_t, and q(x_{t-1} | x_t, x_0): its mean and 1- and 2-sd circles."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p.x0[0], p.x_t[0]],
            y=[p.x0[1], p.x_t[1]],
            mode="lines",
            name="x_0 — x_t",
            line=dict(color="lightgrey", dash="dot"),
        )
    )
    for k, dash in ((1, "solid"), (2, "dash")):
        e = _ellipse(p.mean, p.var * np.eye(2), k)
        fig.add_trace(
            go.Scatter(
                x=e[:, 0],
                y=e[:, 1],
                mode="lines",
                name=f"{k} sd of q(x_t−1 | x_t, x_0)",
                line=dict(color=COLORS["truth"], dash=dash),
            )
        )
    for pt, name, role, sym in (
        (p.x0, "x_0", "data", "circle"),
        (p.x_t, "x_t", "x_t", "circle"),
        (p.mean, "mean μ̃_t", "truth", "x"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[pt[0]], y=[pt[1]], mode="markers", name=name, marker=dict(size=12, color=COLORS[role], symbol=sym)
            )
        )
    # legend below the axes: above them its six entries ran over the title in a wide window
    layout(
        fig,
        f"t = {p.t}: mean = {p.coef1:.3g}·x_0 + {p.coef2:.3g}·x_t, variance β̃_t = {p.var:.3g}",
        "x, first coordinate",
        "x, second coordinate",
        height=520,
        legend_below=True,
    )
    fig.update_layout(margin=dict(b=120))
    return equal_axes(fig, half_width)


def _arrow_heads(x: np.ndarray, d: np.ndarray, scale: float, name: str, axes: dict, showlegend: bool) -> dict:
    """Arrowheads at x + scale d pointing along d: where each point's mean step is heading (no NaN gaps)."""
    head = compact(x + scale * d)
    angle = np.degrees(np.arctan2(d[:, 0], d[:, 1]))  # plotly: clockwise from "up"
    return dict(
        type="scatter",
        x=head[:, 0],
        y=head[:, 1],
        mode="markers",
        name=name,
        legendgroup="drift",
        showlegend=showlegend,
        hovertemplate=f"drift ×{scale:g}<extra></extra>",
        **axes,
        marker=dict(symbol="arrow", angle=compact(angle, 1), size=9, color=COLORS["truth"], line=dict(width=0)),
    )


@dataclass
class StepView:
    """One panel of `fig_chain_steps`: a chain at its kept row k."""

    run: ChainRun
    s: Schedule  # the schedule the chain ran with (the mean drift needs it)
    k: int  # row of run.ts to show
    title: str  # "exact (Gaussian mixture)", "learned (moons)", ...
    data: np.ndarray | None = None  # (N, 2) clean data drawn faint behind, or None


def fig_chain_steps(
    views: list[StepView],
    n_arrows: int = 100,
    n_pred: int = 300,
    half_width: float = 3.5,
    arrow_scale: float | None = None,
) -> go.Figure:
    """Chains at their kept rows, side by side: x_t, the predicted x_0 and the mean-drift arrows mu_theta - x_t.

    Every particle's x_t is drawn; the predicted x_0 of the first n_pred and the arrows of the first n_arrows
    (the particles are independent, so the first ones are a fair sample). An arrowhead sits at
    x_t + arrow_scale (mu_theta - x_t), pointing along the drift; arrow_scale defaults to T / 100 (at least
    1), since one step moves a point about 1/T. The step slider redraws this on every move and each plot and
    each SVG marker costs the browser, so: one figure for all panels, plain dicts, no more markers than the
    picture needs.
    """
    titles, traces = [], []
    for j, v in enumerate(views):
        run, ax, first = v.run, panel_axes(j), j == 0
        k = int(min(max(v.k, 0), len(run.ts) - 1))
        t = int(round(run.ts[k]))
        scale = float(arrow_scale or max(1.0, round((len(run.ts) - 1) / 100)))
        notes = [f"t = {t}"]
        if v.data is not None:
            traces.append(points(v.data, "data", "data", 3, 0.2, legendgroup="data", showlegend=first, **ax))
        x = run.xs[k]
        if k < len(run.pred_x0) and t >= 1:
            px0 = run.pred_x0[k]
            traces.append(
                points(
                    finite(px0[:n_pred], -50, 50),
                    "predicted x̂_0",
                    "pred_x0",
                    3,
                    0.35,
                    legendgroup="pred_x0",
                    showlegend=first,
                    **ax,
                )
            )
            d = finite(mean_drift(v.s, x[:n_arrows], px0[:n_arrows], t), -50, 50)
            traces.append(_arrow_heads(x[:n_arrows], d, scale, "mean drift μ_θ − x_t (arrowheads)", ax, first))
            notes.append(f"arrows ×{scale:g}")
            if len(px0) > n_pred:
                notes.append(f"x̂_0 of {n_pred} of {len(px0)}")
        traces.append(points(finite(x, -50, 50), "x_t", "x_t", 4, 0.7, legendgroup="x_t", showlegend=first, **ax))
        titles.append(f"{v.title}: " + ", ".join(notes))
    lay = layout_dict("", height=540, legend_below=True, fixed_margins=True)
    lay.update(panels(len(views), titles, gap=0.08))
    for j in range(len(views)):
        sfx = "" if j == 0 else str(j + 1)
        lay[f"xaxis{sfx}"].update(
            range=[-half_width, half_width], constrain="domain", title={"text": "first coordinate"}
        )
        lay[f"yaxis{sfx}"].update(
            range=[-half_width, half_width], scaleanchor=f"x{sfx}", scaleratio=1, title={"text": "second coordinate"}
        )
    return fast_figure(traces, lay)


def fig_chain_step(run: ChainRun, s: Schedule, k: int, title: str, data: np.ndarray | None = None, **kw) -> go.Figure:
    """One chain at kept row k (`fig_chain_steps` with one panel)."""
    return fig_chain_steps([StepView(run, s, k, title, data)], **kw)


def animation_rows(K: int, n_frames: int = 40) -> list[int]:
    """At most n_frames row indices from 0 to K-1, evenly spaced in the row (time) order."""
    return sorted(set(np.round(np.linspace(0, K - 1, max(2, n_frames))).astype(int).tolist()))


def fig_chain_animation(
    run: ChainRun, title: str, n_frames: int = 40, n_points: int = 300, half_width: float = 3.5
) -> go.Figure:
    """A client-side plotly animation of x_t and x̂_0 over subsampled steps T -> 0, for the first n_points
    particles (every frame is sent, and each marker is drawn, before the page's first figure shows)."""
    rows = animation_rows(len(run.ts), n_frames)
    P = len(run.pred_x0)

    def frame_data(k):
        px0 = run.pred_x0[min(k, P - 1)][:n_points]
        return [
            scatter2d(finite(px0, -50, 50), "predicted x̂_0", "pred_x0", 3, 0.35),
            scatter2d(finite(run.xs[k][:n_points], -50, 50), "x_t", "x_t", 4, 0.7),
        ]

    fig = go.Figure(frame_data(rows[0]))
    fig.frames = [
        go.Frame(
            data=frame_data(k),
            name=str(int(round(run.ts[k]))),
            layout=dict(title_text=f"{title}: t = {int(round(run.ts[k]))}"),
        )
        for k in rows
    ]
    layout(fig, f"{title}: t = {int(round(run.ts[rows[0]]))}", "first coordinate", "second coordinate", height=500)
    animation_controls(fig, [f.name for f in fig.frames])
    return equal_axes(legend_inside(fig), half_width)


def fig_paths(run: ChainRun, idx, title: str, data: np.ndarray | None = None, half_width: float = 3.5) -> go.Figure:
    """The full paths x_T -> x_0 of the chosen particles (every kept step), start and end marked."""
    traces = [] if data is None else [scatter2d(data, "data", "data", 3, 0.2)]
    palette = ["#1f77b4", "#8c564b", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#9467bd", "#d62728"]
    for j, i in enumerate(idx):
        p = finite(run.xs[:, int(i)], -50, 50)
        c = palette[j % len(palette)]
        traces.append(
            go.Scatter(
                x=compact(p[:, 0]), y=compact(p[:, 1]), mode="lines", name=f"particle {i}", line=dict(color=c, width=1)
            )
        )
        traces.append(
            go.Scatter(
                x=[p[0, 0], p[-1, 0]],
                y=[p[0, 1], p[-1, 1]],
                mode="markers",
                showlegend=False,
                marker=dict(color=c, size=[8, 12], symbol=["circle-open", "star"]),
                hovertext=["x_T (start)", "x_0 (end)"],
            )
        )
    fig = go.Figure(traces)
    layout(
        fig,
        f"{title}: full paths (○ x_T, ★ x_0)",
        "first coordinate",
        "second coordinate",
        height=520,
        legend_below=True,
    )  # below: up to nine entries above the axes ran into the title
    fig.update_layout(margin=dict(b=120))
    return equal_axes(fig, half_width)


def fig_digit_grid(chain: DigitChain, rows: list[int], title: str) -> go.Figure:
    """Two mosaics side by side: x_t (left) and x̂_0 (right) at the chosen rows (one line per t).

    The chain's own uint8 pixels are sent (0..255 for -1..1): a quarter of the bytes of float32."""
    from plotly.subplots import make_subplots

    P = len(chain.pred_x0)
    xt = chain.xs[rows]  # (R, B, 28, 28) uint8
    px = chain.pred_x0[[min(r, P - 1) for r in rows]]
    fig = make_subplots(1, 2, subplot_titles=("x_t", "predicted x̂_0"), horizontal_spacing=0.04)
    for col, imgs in ((1, xt), (2, px)):
        m = mosaic(imgs)
        fig.add_trace(
            go.Heatmap(
                z=m[::-1],
                zmin=0,
                zmax=255,
                colorscale=DIGIT_COLORSCALE,
                showscale=False,
                hovertemplate="grey level %{z} of 255 (pixel −1 … 1)<extra></extra>",
            ),
            1,
            col,
        )
    H = 30
    ticks = [len(rows) * H - (i + 0.5) * H for i in range(len(rows))]
    labels = [f"t = {int(round(chain.ts[r]))}" for r in rows]
    layout(fig, title, height=max(260, 70 * len(rows) + 120))  # before the axis titles: it resets them
    fig.update_yaxes(tickvals=ticks, ticktext=labels, title_text="time step t", row=1, col=1)
    fig.update_yaxes(tickvals=ticks, showticklabels=False, row=1, col=2)  # same rows: its labels ran into x_t
    fig.update_xaxes(showticklabels=False, title_text="digit (one column per seed/label)")
    return fig


IDENTITY_TIMES = (900, 600, 300)  # steps at which the MNIST section asks whether the digit is chosen yet


def identity_by_step(chain: DigitChain, judge, times=IDENTITY_TIMES) -> dict[int, float]:
    """For each wanted time t: the fraction of digits whose x̂_0 at the kept step nearest t the judge reads as
    the same class as the chain's final digit (an independent classifier of real digits, toy_models.metrics)."""
    from toy_models.metrics import judge_logits

    final = judge_logits(torch.from_numpy(from_uint8(chain.xs[-1]))[:, None], judge).argmax(1)
    out = {}
    for t in times:
        k = min(int(np.abs(chain.ts - float(t)).argmin()), len(chain.pred_x0) - 1)
        pred = judge_logits(torch.from_numpy(from_uint8(chain.pred_x0[k]))[:, None], judge).argmax(1)
        out[int(round(chain.ts[k]))] = float((pred == final).double().mean())
    return out
