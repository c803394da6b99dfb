"""Lesson 4 — the training objective: the variational bound term by term, why it is rearranged,
and how the simple noise loss reweights it.

Read beside Ho, Jain & Abbeel (2020), eqs. 3, 5, 12 and 14, and toy_models/elbo.py. The
computations return plain tensors/arrays or small dataclasses; the figure builders turn them
into plotly figures. No streamlit here (views/elbo.py renders).

Numbers are per example, in nats, summed over dimensions; bits/dim = nats / (D ln 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from toy_models.diffusion import (
    p_mean_variance,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_mean,
    q_posterior_mean_variance,
)
from toy_models.elbo import gaussian_log_likelihood, prior_kl, vb_term, vb_weights
from toy_models.gmm import AnalyticModel
from toy_models.schedules import Schedule, make_schedule

from .figures import COLORS, compact, finite, layout, scatter2d

VARIANCE_CHOICES = ("beta_tilde", "beta")  # sigma_t^2 of p_theta: Ho et al. section 3.2
LN2 = math.log(2.0)

# --- narrative ------------------------------------------------------------------------------------
INTRO = (
    "**One idea.** The training objective of a diffusion model is a bound L ≥ −log p_θ(x_0), and the bound is "
    "a sum of one KL divergence per step between two Gaussians: the true reverse step q(x_{t−1} | x_t, x_0) and "
    "the model's p_θ(x_{t−1} | x_t). For a model that predicts the noise, each KL is a weighted noise-prediction "
    "error, λ_t ‖ε − ε_θ(x_t, t)‖², plus a constant. Below, every term is computed for the exact model of a "
    "Gaussian mixture, whose true −log q(x_0) we know.\n\n"
    "**The control:** T and the schedule in the sidebar. A smaller T walks the same way to noise in fewer, "
    "bigger steps, and every term of the bound follows it."
)
VAE_TEXT = """
**A VAE with T latent layers.** The forward process q is a *fixed encoder*: it maps x_0 to latents
x_1, …, x_T by adding noise, with no parameters to learn. The reverse process p_θ is the *learned
decoder*: it starts from N(0, I) and walks back one Gaussian step at a time. As in a VAE, we cannot
compute log p_θ(x_0) directly (it integrates over every path of latents), so we maximise a lower
bound on it — equivalently, minimise the upper bound L on −log p_θ(x_0) below. Here p_θ is this
stochastic reverse chain: the bound is a statement about its likelihood.
"""
VAE_LOOK = "Look at the arrows: q (above) only adds noise and has no parameters; only p_θ (below) is learned."
BOUND_LINES = [
    (
        r"-\log p_\theta(x_0) \le \mathbb{E}_q\!\left[-\log \frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\right]"
        r" =: L",
        "Jensen's inequality, exactly as in a VAE (Ho et al. 2020, eq. 3); the expectation is over the forward "
        "chain x_{1:T} ~ q(x_{1:T} | x_0).",
        None,
    ),
    (
        r"L = \mathbb{E}_q\!\left[-\log p(x_T) - \sum_{t=1}^{T} \log \frac{p_\theta(x_{t-1}\mid x_t)}"
        r"{q(x_t\mid x_{t-1})}\right]",
        "Both chains are Markov, so the log-ratio splits into one term per step. Estimating each step by sampled "
        "log-densities is the *naive* estimator (section 4).",
        "estimator_pair",
    ),
    (
        r"\begin{aligned} L = \mathbb{E}_q\Big[\, &\underbrace{\mathrm{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T}"
        r" \\ &+ \sum_{t=2}^{T} \underbrace{\mathrm{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,"
        r"p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}} \\ &\underbrace{-\log p_\theta(x_0\mid x_1)}_{L_0}\,\Big]"
        r"\end{aligned}",
        "Bayes' rule turns q(x_t | x_{t-1}) into the posterior q(x_{t-1} | x_t, x_0), a Gaussian with a closed "
        "form; every KL is then between two Gaussians (Ho et al. eq. 5). L_{t-1} and L_0 depend on the random "
        "x_t; the numbers on this page are their averages over x_t ~ q(x_t | x_0) and over the data points.",
        "bound_terms",
    ),
    (
        r"L_T = \mathrm{KL}\big(\mathcal{N}(\sqrt{\bar\alpha_T}\,x_0,\ (1-\bar\alpha_T)I)\,\|\,\mathcal{N}(0,I)\big)",
        "The prior term: no parameters, only the schedule.",
        "prior_kl",
    ),
    (
        r"\begin{aligned} L_{t-1} &= \frac{\|\tilde\mu_t(x_t,x_0) - \mu_\theta(x_t,t)\|^2}{2\sigma_t^2} + D\,c_t,"
        r" \\ c_t &= \frac{1}{2}\Big(\log\frac{\sigma_t^2}{\tilde\beta_t} + \frac{\tilde\beta_t}{\sigma_t^2} - 1\Big),"
        r" \\ L_0 &= -\log \mathcal{N}\big(x_0;\ \mu_\theta(x_1,1),\ \sigma_1^2 I\big) \end{aligned}",
        "The KL between N(μ̃_t, β̃_t I) and N(μ_θ, σ_t² I) in D dimensions: the squared error of the mean over "
        "twice the variance, plus D c_t, the part that comes from the two variances alone (it has no θ, and is "
        "zero when σ_t² = β̃_t). L_0 is written for continuous data; for 8-bit images it is the probability of "
        "the pixel's bin (Ho et al. eq. 13).",
        "vb_term",
    ),
]
VARIANCE_TEXT = """
**The reverse variance σ_t².** Ho et al. fix the variance of p_θ(x_{t−1} | x_t) to σ_t² I and offer two
choices (section 3.2): β̃_t, the variance of q(x_{t−1} | x_t, x_0), which is right when x_0 is a single
known point, and β_t, which is right when x_0 ~ N(0, I). The mean is the same; only the bound's terms
change (c_t above and the 1/σ_t² in front of the mean's error). Every number on this page follows this choice.
"""
TERMS_LOOK = (
    "Look at where the line is high: the KL terms are largest at the smallest t, the last few "
    "denoising steps, and L_T (the square at t = T) is tiny because x_T is almost pure noise."
)
TABLE_LOOK = "The three rows add up to the total; bits/dim is the same number divided by D ln 2 (D = 2 here)."
REARRANGE_TEXT = """
Both forms have the **same expectation** — they are the same bound. Training estimates it with one
random step t per example, scaled by T. The naive estimate samples x_{t-1} too and uses the log-ratio
log q(x_{t-1} | x_t, x_0) − log p_θ(x_{t-1} | x_t); the rearranged one replaces that log-ratio by the
KL between the two Gaussians, computed *exactly* — its average over x_{t-1} — so only t and x_t are
left to chance (Rao–Blackwell: the variance can only drop). Below, both are computed 2,000 times for
**one** data point x_0, with the same t and x_t: the same mean, a different spread.
"""
ESTIMATORS_LOOK = (
    "Look at the widths of the two histograms: they centre on the same value, and the rearranged one is never wider."
)
SIMPLE_TEXT = """
For a noise-predicting model, μ_θ = (x_t − β_t ε_θ / sqrt(1 − ᾱ_t)) / sqrt(α_t) (Ho et al. eq. 11), and
each KL term is a *weighted* noise error: L_{t-1} = λ_t ‖ε − ε_θ(x_t, t)‖² + D c_t (eq. 12). Ho et al.
dropped the weights (set every λ_t to one, and left out D c_t) and got **L_simple** (eq. 14): better
samples, a slightly worse bound. The weights are largest at small t, so L_vlb spends most of its effort on
the last, nearly invisible denoising steps, which L_simple weighs no more than the others.
"""
WEIGHTS_LOOK = (
    "Look at the shape, not the height (the two losses have different scales): λ_t is largest at "
    "t = {t_max} and smallest at t = {t_min}, {ratio:.3g}× apart, while L_simple weighs every t the same."
)


def weights_look(t: np.ndarray, lam: np.ndarray) -> str:
    """WEIGHTS_LOOK for the weights of `simple_weights`."""
    i, j = int(np.argmax(lam)), int(np.argmin(lam))
    return WEIGHTS_LOOK.format(t_max=int(t[i]), t_min=int(t[j]), ratio=float(lam[i] / max(lam[j], 1e-300)))


PARAM_TEXT = """
**Three ways to say the same thing.** A network can output the mean μ of p(x_{t-1} | x_t), the noise
ε, or the clean x_0. Each converts into the others with the closed forms below (all linear in x_t for
a fixed t), so the bound is the same function of any of them; only the *loss weighting* implied by
"just regress the output" differs.
"""
EQ_SIMPLE = (
    r"\begin{aligned} L_\text{simple} &= \mathbb{E}_{t, x_0, \epsilon}\,\big\|\epsilon - "
    r"\epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\|^2, \\ "
    r"\lambda_t &= \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)} \end{aligned}"
)
EQ_PARAMS = [
    r"x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon}{\sqrt{\bar\alpha_t}}, \qquad "
    r"\epsilon = \frac{x_t - \sqrt{\bar\alpha_t}\,x_0}{\sqrt{1-\bar\alpha_t}}",
    r"\begin{aligned} \mu &= \underbrace{\frac{\beta_t\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_t}}_{\text{coef}_1} x_0"
    r" + \underbrace{\frac{(1-\bar\alpha_{t-1})\sqrt{\alpha_t}}{1-\bar\alpha_t}}_{\text{coef}_2} x_t, \\ "
    r"x_0 &= \frac{\mu - \text{coef}_2\, x_t}{\text{coef}_1} \end{aligned}",
]
HYBRID_TEXT = (
    '**What "hybrid" means here.** Nichol & Dhariwal (2021, section 3.1) train L_simple + 0.001 L_vlb to '
    "*learn* the variances Σ_θ: L_vlb's gradient reaches only Σ_θ (a stop-gradient on the mean), while "
    "L_simple trains the mean. Our models keep σ_t fixed, so there is nothing for L_vlb to learn but the "
    "mean, and since L_vlb's terms are λ_t-weighted noise errors, the hybrid loss is L_simple with step t's "
    "noise error weighted by 1 + 0.001 · T · λ_t (the trainer draws t uniformly and scales L_vlb by T). On "
    "{where}, that weight runs from {w_min:.3f} to {w_max:.3g} (at t = {t_max}) over t = 2 … T and is below "
    "1.1 at {share:.1%} of them: {verdict}. (At t = 1 it adds 0.001 · T · L_0, the decoder's likelihood "
    "of x_0.)"
)
HYBRID_VERDICTS = (
    "a small reweighting of L_simple",
    "mostly L_simple, with extra weight on the few steps where λ_t is large",
    "a real reweighting of L_simple toward the steps where λ_t is large",
)
TRY_THIS = [
    "Set **T = 10** in the sidebar: the same way to noise in ten big steps. L_T stays tiny (x_T is still "
    "almost pure noise), but each of the few KL terms is much larger and L_0 rises, so the gap between the "
    "bound and the true NLL grows several times over.",
    "Open the advanced section and switch the reverse variance to **β_t**: the KL terms at small t shrink and "
    "L_0 changes — the same model, a tighter bound (for smooth data the true reverse variance is closer to "
    "β_t than to β̃_t).",
    "Switch the schedule to **cosine**: it adds noise more slowly at small t, so half of the KL sum now "
    "reaches up to a larger t (the sentence under the term table says where).",
    "In the estimator section, set t to about T/2 (fixed), then raise T in the sidebar: the naive estimator's "
    "spread grows about like √T, while the rearranged one hardly moves.",
]


# --- the bound, term by term -------------------------------------------------------------------
@dataclass
class BoundReport:
    """The bound of a model on a batch, term by term (means over the batch, nats per example)."""

    prior: float  # L_T
    terms: np.ndarray  # (rows,) row 0 is L_0 (t = 1), then the KL terms L_{t-1} at t = times[1:] (all t = 2..T
    #                    for the exact sum)
    per_example: np.ndarray  # (B,) the bound of each example, L_T + sum_t L_{t-1}
    dims: int  # D, dimensions per example
    weights: np.ndarray | None = None  # (T,) how many steps each row stands for (strided estimate); None = 1

    @property
    def T(self) -> int:
        """The number of diffusion steps the rows cover (rows = T for the exact sum)."""
        return int(self.terms.shape[0] if self.weights is None else round(float(self.weights.sum())))

    @property
    def times(self) -> np.ndarray:
        """(rows,) the t of each row: 1..T, or the evaluated times of a strided estimate."""
        if self.weights is None:
            return np.arange(1, self.T + 1)
        return 1 + np.concatenate([[0], np.cumsum(self.weights[:-1])]).astype(int)

    @property
    def weighted_terms(self) -> np.ndarray:
        return self.terms if self.weights is None else self.terms * self.weights

    @property
    def total(self) -> float:
        """L = L_T + sum_{t>=1} L_{t-1}, nats per example."""
        return float(self.prior + self.weighted_terms.sum())

    @property
    def l0(self) -> float:
        return float(self.terms[0])

    @property
    def kl_sum(self) -> float:
        """sum_{t=2}^T L_{t-1}."""
        return float(self.weighted_terms[1:].sum())

    def bits_per_dim(self, nats: float) -> float:
        return float(nats) / (self.dims * LN2)

    @property
    def stderr(self) -> float:
        """Standard error of `total` over the batch."""
        n = self.per_example.shape[0]
        return float(self.per_example.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf

    def groups(self) -> dict[str, float]:
        """The three groups of the bound; they sum to `total`."""
        return {
            "L_T (prior)": self.prior,
            "Σ L_{t-1}, t = 2..T (KL terms)": self.kl_sum,
            "L_0 (reconstruction)": self.l0,
        }

    def dominant_steps(self, fraction: float = 0.5) -> int:
        """The smallest t* such that the KL terms at t = 2..t* hold `fraction` of the KL sum."""
        kl = self.weighted_terms[1:]
        if kl.size == 0 or kl.sum() <= 0:
            return 1
        i = int(np.searchsorted(np.cumsum(kl) / kl.sum(), fraction))
        return int(self.times[1:][min(i, kl.size - 1)])


def _check_variance(variance: str) -> str:
    if variance not in VARIANCE_CHOICES:
        raise ValueError(f"variance must be one of {VARIANCE_CHOICES}; got {variance!r}")
    return variance


EXACT_HEAD = 50  # a strided bound still evaluates every t up to here: the small-t terms are large and change fast


def bound_terms(
    s: Schedule,
    model,
    x0: torch.Tensor,
    y=None,
    variance: str = "beta_tilde",
    data_kind: str = "continuous",
    seed: int = 0,
    stride: int = 1,
    chunk_elements: int = 40_000,
    progress=None,
    exact_head: int = EXACT_HEAD,
) -> BoundReport:
    """Every term of the bound, L = L_T + sum_{t=2}^T L_{t-1} + L_0  (Ho et al. 2020, eq. 5).

    The same sum as toy_models.elbo.elbo_terms (one x_t ~ q(x_t | x_0) per example and t), but
    many t go through the model in one batch, so 2,000 points x 1,000 steps take seconds.
    stride > 1 (for slow models) evaluates every t <= exact_head, where the terms are large and change
    fast, and above it only t = exact_head + 1, + 1 + stride, ..., each standing for the `stride` steps up
    to the next (a stratified estimate of the sum); stride = 1 is the exact sum. For the first shipped
    MNIST model (channels [16, 48, 64]) on 16 digits the exact sum is 1.978 bits/dim; every 20th t with the
    first 50 exact gives 2.008 (98 model calls instead of 1,000), while every 10th t with no exact head gave
    3.42: the t = 2 term (103 nats) standing for ten steps.
    chunk_elements: numbers per model call (points x dims x times); ~40,000 keeps a 2D MLP's activations
    in cache: 2,000 points x 1,000 steps took 2.4 s in chunks of 40,000 and 7.1 s in chunks of 400,000.
    progress: optional callable(done, total).
    """
    _check_variance(variance)
    if int(stride) < 1:
        raise ValueError(f"stride must be a positive integer; got {stride}")
    if x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must be a non-empty batch shaped (B, ...); got {tuple(x0.shape)}")
    B, D = x0.shape[0], x0[0].numel()
    head = s.T if int(stride) == 1 else min(s.T, max(1, int(exact_head)))  # t = 1 .. head: every one
    ts_all = torch.cat([torch.arange(1, head + 1), torch.arange(head + 1, s.T + 1, int(stride))])
    g = torch.Generator().manual_seed(int(seed))
    k = max(1, int(chunk_elements) // (B * D))  # how many t per model call
    rows = []
    with torch.no_grad():
        for i in range(0, len(ts_all), k):
            ts = ts_all[i : i + k]
            xr = x0.repeat(len(ts), *([1] * (x0.ndim - 1)))  # (k B, ...)
            tt = ts.repeat_interleave(B).to(x0.device)  # (k B,)
            yr = None if y is None else y.repeat(len(ts))
            noise = torch.randn(xr.shape, generator=g, dtype=xr.dtype).to(xr.device)
            rows.append(vb_term(s, model, xr, tt, yr, variance, data_kind, noise=noise).reshape(len(ts), B).cpu())
            if progress is not None:
                progress(min(i + k, len(ts_all)), len(ts_all))
        prior = prior_kl(s, x0).cpu()
    terms = torch.cat(rows).to(torch.float64)  # (n_t, B)
    w = None
    if stride > 1:
        nxt = torch.cat([ts_all[1:], torch.tensor([s.T + 1])])
        w = (nxt - ts_all).to(torch.float64)  # steps each row stands for
    per_ex = prior.double() + (terms * (1.0 if w is None else w[:, None])).sum(0)
    return BoundReport(
        prior=float(prior.double().mean()),
        terms=terms.mean(1).numpy(),
        per_example=per_ex.numpy(),
        dims=D,
        weights=None if w is None else w.numpy(),
    )


# --- what no network can remove: L_0 of a denoiser that knows x_0 --------------------------------------
class KnowsX0(torch.nn.Module):
    """The ideal noise predictor for one known batch x_0: eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t).

    Its reverse mean at t = 1 is x_0 itself, so its L_0 is what the fixed decoder variance sigma_1^2 costs.
    """

    parameterization = "eps"
    num_classes = 0

    def __init__(self, s: Schedule, x0: torch.Tensor):
        super().__init__()
        self.s, self.x0 = s, x0

    def forward(self, x_t, t, y=None):
        return predict_eps_from_x0(self.s, x_t, t, self.x0)


def l0_floor(s: Schedule, x0: torch.Tensor, variance: str = "beta_tilde", data_kind: str = "image8bit") -> float:
    """L_0 in nats per example (mean) for a network that predicts x_0 exactly at t = 1.

    For 8-bit images each value owns a bin 2/255 = 0.0078 wide; with sigma_1 about as wide (0.0074 for
    beta-tilde, 0.01 for beta, on the linear schedule) even the exact mean leaves part of the decoder's
    mass in the neighbouring bins. No network with this fixed sigma_1 scores a lower L_0; learning the
    variances (Nichol & Dhariwal 2021) is what moves it.
    """
    terms = vb_term(
        s, KnowsX0(s, x0), x0, 1, variance=variance, data_kind=data_kind, generator=torch.Generator().manual_seed(0)
    )
    return float(terms.double().mean())


MNIST_LIMITS = (
    "**What limits this bound.** A network that knew each x_0 exactly would still pay L_0 = {floor:.1f} nats "
    "({floor_bpd:.2f} bits/dim): the last reverse step has a fixed σ_1 = {sigma1:.4f}, about a whole pixel bin "
    "(2/255 = 0.0078), so a bin reaches only {half:.2f} σ_1 either side of its centre and even the exact mean "
    "leaves much of the mass in the neighbouring bins. The other {rest:.2f} bits/dim (the KL terms and L_0 "
    "above that floor) are the information in the digits themselves, which every model pays, the slack of a "
    "bound with fixed variances, and the network's error: {n_params:.2f} M parameters trained for {steps:,} "
    "steps on {n_train:,} digits.\n\n"
    "**Beside published figures.** Normalising flows reach about 1.0 bits/dim on MNIST (FFJORD 0.99, Glow "
    "1.05, as tabulated by Grathwohl et al. 2019); diffusion models are usually reported on CIFAR-10, a harder "
    "data set, from 3.75 bits/dim (Ho et al. 2020, L_simple) down to 2.65 (Kingma et al. 2021), so our "
    "{bpd:.2f} bits/dim is a small model's bound, not a competitive likelihood; with this fixed σ_1, L_0 alone "
    "takes {floor_bpd:.2f} of it. The bound here is of the 8-bit pixel values (a discrete likelihood); "
    "lesson 5 explains how such a number is compared with a continuous density (dequantisation)."
)


def mnist_limits(ck, x0: torch.Tensor, report: BoundReport, variance: str, n_train: int) -> str:
    """MNIST_LIMITS for a loaded digit checkpoint and its bound `report` on the digits x0."""
    s = ck.schedule
    floor = l0_floor(s, x0, variance)
    x = x0[:1]  # sigma_1 as the reverse step sets it (p_mean_variance), not a second copy of its variance rule
    sigma1 = float(p_mean_variance(s, KnowsX0(s, x), x, 1, variance=variance).log_variance.exp().sqrt().max())
    return MNIST_LIMITS.format(
        floor=floor,
        floor_bpd=report.bits_per_dim(floor),
        sigma1=sigma1,
        half=(1.0 / 255.0) / sigma1,
        rest=report.bits_per_dim(report.total) - report.bits_per_dim(floor),
        steps=int(ck.sidecar.get("steps", 0)),
        bpd=report.bits_per_dim(report.total),
        n_params=sum(p.numel() for p in ck.model.parameters()) / 1e6,
        n_train=n_train,
    )


# --- the same process with a different number of steps ------------------------------------------------
def same_process(s: Schedule, T_new: int) -> Schedule:
    """The schedule's continuous alpha-bar curve cut into T_new steps (a "custom" Schedule).

    abar'_t = abar(t T / T_new) with abar(.) = Schedule.alpha_bar (log-linear between integers), so
    every T_new describes the same diffusion, discretised more or less finely; beta'_t = 1 - abar'_t / abar'_{t-1}.
    """
    T_new = int(T_new)
    if T_new < 1:
        raise ValueError(f"T_new must be a positive integer; got {T_new}")
    u = torch.arange(T_new + 1, dtype=torch.float64) * (s.T / T_new)
    acp = s.alpha_bar(u)
    betas = (1.0 - acp[1:] / acp[:-1]).clamp(1e-12, 0.999)
    return make_schedule("custom", T_new, betas=betas)


@dataclass
class BoundVsT:
    """The bound of the exact model as the number of steps grows (same continuous process)."""

    Ts: np.ndarray  # (n,) numbers of steps
    bound: np.ndarray  # (n,) mean bound, nats per example
    stderr: np.ndarray  # (n,) standard error of the mean gap
    gap: np.ndarray  # (n,) mean of bound - true NLL, paired per example (>= 0 in expectation)
    true_nll: float  # mean -log q(x_0) over the same points


def bound_vs_T(
    gmm, s: Schedule, Ts, x0: torch.Tensor, variance: str = "beta_tilde", seed: int = 0, progress=None
) -> BoundVsT:
    """The exact model's bound for each T in Ts (schedules from `same_process`), against -log q(x_0)."""

    nll = -gmm.log_prob(x0).numpy()
    out = []
    for i, T in enumerate(Ts):
        sT = same_process(s, int(T))
        r = bound_terms(sT, AnalyticModel(gmm, sT), x0, variance=variance, seed=seed)
        gap = r.per_example - nll
        out.append((r.total, gap.std(ddof=1) / math.sqrt(len(gap)), gap.mean()))
        if progress is not None:
            progress(i + 1, len(Ts))
    a = np.array(out)
    return BoundVsT(np.asarray(Ts), a[:, 0], a[:, 1], a[:, 2], float(nll.mean()))


def curve_verdict(curves: dict[str, BoundVsT]) -> str:
    """One sentence on the bound-vs-T curves at their largest T: which reverse variance ends closer to the true NLL."""
    if len(curves) < 2:
        return ""
    (k_best, best), (k_worst, worst) = sorted(curves.items(), key=lambda kv: kv[1].gap[-1])[:: len(curves) - 1]
    why = (
        ": for this smooth data the true reverse step at small t is wider than β̃_t, and close to β_t"
        if k_best.startswith("β_t")
        else ""
    )
    return (
        f"At T = {int(best.Ts[-1])} the bound with σ_t² = {k_best} ends {best.gap[-1]:.3f} nats above the true "
        f"NLL, {worst.gap[-1] / max(best.gap[-1], 1e-12):.3g}× closer than with σ_t² = {k_worst}{why}."
    )


def ode_nll(model, s: Schedule, x0: torch.Tensor, **kw) -> np.ndarray:
    """-log p(x_0) under the model's probability-flow ODE (toy_models.likelihood), nats per example."""
    from toy_models.likelihood import ode_log_likelihood

    return (-ode_log_likelihood(model, s, x0, **kw).log_px).detach().cpu().numpy().astype(np.float64)


ODE_TEXT = (
    "On {n_ode} points, ODE NLL − true NLL = **{gap_ode:.4f} nats** (mean); on {n_bound:,} points, bound − true "
    "NLL = **{gap_bound:.3f} nats**.\n\n"
    "**What is guaranteed.** The bound L is an upper bound on −log p_θ(x_0) of the *stochastic* reverse chain "
    "p_θ (Jensen's inequality, section 1). The probability-flow ODE (Song et al. 2021) turns the same network "
    "into a *different* model: a deterministic, invertible map from N(0, I) to data, whose density the change "
    "of variables gives exactly, up to the solver's error. The two models agree only when the score is exact; "
    "for a learned network they differ, and no inequality ties the ODE's NLL to the bound.\n\n"
    "**What we observe.** Here the ODE's NLL lies {relation} the bound ({diff:.3f} nats {side}, each measured "
    "from the true NLL of its own points).{learned}"
)
ODE_LEARNED = (
    " The shipped model '{name}' shows the same on its own evaluation: ODE NLL {ode:.2f} bits/dim "
    "against a bound of {elbo:.2f} bits/dim."
)
ODE_LEARNED_OTHER = (
    " The shipped model '{name}' does not: on its own evaluation its ODE NLL is {ode:.2f} "
    "bits/dim against a bound of {elbo:.2f} bits/dim."
)


def ode_vs_bound_text(
    gap_ode: float, gap_bound: float, n_ode: int, n_bound: int, learned: tuple[str, float, float] | None = None
) -> str:
    """ODE_TEXT: the ODE's and the bound's distance to the true NLL, what theory guarantees and what the
    numbers show. learned: (name, bound bits/dim, ODE NLL bits/dim) of a shipped model's sidecar, or None."""
    below = gap_ode < gap_bound
    extra = ""
    if learned is not None:
        name, elbo_bpd, ode_bpd = learned
        extra = (ODE_LEARNED if (ode_bpd < elbo_bpd) == below else ODE_LEARNED_OTHER).format(
            name=name, ode=ode_bpd, elbo=elbo_bpd
        )
    return ODE_TEXT.format(
        n_ode=n_ode,
        gap_ode=gap_ode,
        n_bound=n_bound,
        gap_bound=gap_bound,
        relation="below" if below else "above",
        diff=abs(gap_bound - gap_ode),
        side="lower" if below else "higher",
        learned=extra,
    )


# --- why rearrange: two estimators of the same bound ------------------------------------------------
def estimator_pair(
    s: Schedule,
    model,
    x0_point: torch.Tensor,
    n: int,
    variance: str = "beta_tilde",
    seed: int = 0,
    t_fixed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """n estimates of L for ONE x_0 (D,) by two routes, with ONE random step t ~ U{1..T} each (as in training).

    naive (sampled log-ratios, the summand of Ho et al. eq. 3 after Bayes' rule):
        L_hat = [log q(x_T | x_0) - log p(x_T)] + T [log q(x_{t-1} | x_t, x_0) - log p_theta(x_{t-1} | x_t)],
        x_T ~ q(x_T | x_0), x_t ~ q(x_t | x_0), x_{t-1} ~ q(x_{t-1} | x_t, x_0)   (t = 1: T [-log p_theta(x_0 | x_1)])
    rearranged (Ho et al. eq. 5, closed-form Gaussian KLs, same t and x_t):
        L_hat = L_T + T L_{t-1}(x_t)
    Given t and x_t the rearranged estimate is the conditional expectation of the naive one
    (Rao-Blackwell), so its variance can only be smaller. Returns (naive (n,), rearranged (n,)) in nats.
    t_fixed: use this t for every estimate instead of a random one (shows the per-step noise alone).
    """
    from toy_models.diffusion import q_sample

    _check_variance(variance)
    g = torch.Generator().manual_seed(int(seed))
    x0 = x0_point.to(torch.float64).reshape(1, -1).expand(int(n), -1).contiguous()  # (n, D)
    if int(n) < 2:
        raise ValueError(f"n must be at least 2 (a spread needs two estimates); got {n}")
    t = torch.randint(1, s.T + 1, (int(n),), generator=g)  # (n,)
    if t_fixed is not None:
        if not 1 <= int(t_fixed) <= s.T:
            raise ValueError(f"t_fixed must be an integer in 1..T = 1..{s.T}; got {t_fixed}")
        t = torch.full((int(n),), int(t_fixed), dtype=torch.long)
    zero = torch.zeros_like(x0)
    with torch.no_grad():
        # prior term: one sampled log-ratio vs the closed form
        mT = s.sqrt_alphas_cumprod[s.T] * x0
        lvT = s.log_one_minus_alphas_cumprod[s.T].expand_as(x0)
        x_T = q_sample(s, x0, s.T, generator=g)
        prior_mc = (gaussian_log_likelihood(x_T, mT, lvT) - gaussian_log_likelihood(x_T, zero, zero)).sum(1)
        # one step t: x_t, then x_{t-1} from the posterior q(x_{t-1} | x_t, x_0)
        noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        x_t = q_sample(s, x0, t, noise=noise)
        post_mean, post_var, post_logvar = q_posterior_mean_variance(s, x0, x_t, t)
        x_prev = post_mean + post_var.sqrt() * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        out = p_mean_variance(s, model, x_t, t, variance=variance)
        log_ratio = (
            gaussian_log_likelihood(x_prev, post_mean, post_logvar.expand_as(x0))
            - gaussian_log_likelihood(x_prev, out.mean, out.log_variance.expand_as(x0))
        ).sum(1)
        step_analytic = vb_term(s, model, x0, t, None, variance, noise=noise)  # KL (t >= 2) or -log p(x_0 | x_1)
        step_mc = torch.where(t == 1, step_analytic, log_ratio)
        naive = prior_mc + s.T * step_mc
        rearranged = prior_kl(s, x0) + s.T * step_analytic
    return naive.numpy(), rearranged.numpy()


@dataclass
class EstimatorComparison:
    """Many estimates of the same bound by the two routes."""

    naive: np.ndarray  # (n,) nats
    rearranged: np.ndarray  # (n,) nats

    @property
    def std_naive(self) -> float:
        return float(self.naive.std(ddof=1))

    @property
    def std_rearranged(self) -> float:
        return float(self.rearranged.std(ddof=1))

    @property
    def ratio(self) -> float:
        """std(naive) / std(rearranged): how many times noisier the naive estimator is."""
        return self.std_naive / max(self.std_rearranged, 1e-300)

    @property
    def mean_difference_z(self) -> float:
        """(mean naive - mean rearranged) / its standard error: about N(0, 1) when both are unbiased."""
        se = math.sqrt(self.naive.var(ddof=1) / len(self.naive) + self.rearranged.var(ddof=1) / len(self.rearranged))
        return float((self.naive.mean() - self.rearranged.mean()) / se)


def compare_estimators(
    s: Schedule, model, x0_point, n: int = 2000, variance: str = "beta_tilde", seed: int = 0, t_fixed: int | None = None
) -> EstimatorComparison:
    """n naive and n rearranged estimates of the bound at one data point (see `estimator_pair`)."""
    return EstimatorComparison(*estimator_pair(s, model, x0_point, n, variance, seed, t_fixed))


# --- L_simple and its weights ----------------------------------------------------------------------
def simple_weights(s: Schedule, variance: str = "beta_tilde") -> tuple[np.ndarray, np.ndarray]:
    """(t (T-1,), lambda_t (T-1,)) for t = 2..T: L_{t-1} = lambda_t ||eps - eps_theta||^2 + D c_t  (Ho et al. eq. 12).

    L_simple (eq. 14) sets every lambda_t to 1.
    """
    lam, _ = vb_weights(s, _check_variance(variance))
    return np.arange(2, s.T + 1), lam[2:].numpy()


def hybrid_weights(
    s: Schedule, variance: str = "beta_tilde", vlb_weight: float = 0.001
) -> tuple[np.ndarray, np.ndarray]:
    """(t (T-1,), w_t (T-1,)) for t = 2..T: the weight of step t's noise error in the hybrid loss with fixed sigma_t.

    toy_models.training draws t ~ U{1..T} and adds vlb_weight * L_{t-1} / (p(t) D) = vlb_weight * T * L_{t-1} / D
    to L_simple = ||eps - eps_theta||^2 / D; with L_{t-1} = lambda_t ||eps - eps_theta||^2 + D c_t (Ho et al.
    eq. 12) that is w_t ||eps - eps_theta||^2 / D + a constant, w_t = 1 + vlb_weight * T * lambda_t.
    """
    t, lam = simple_weights(s, variance)
    return t, 1.0 + float(vlb_weight) * s.T * lam


def hybrid_text(s: Schedule, variance: str = "beta_tilde", vlb_weight: float = 0.001, where: str = "") -> str:
    """HYBRID_TEXT with the weights of `hybrid_weights` on schedule s (`where` names it for the reader)."""
    if s.T < 2:
        return (
            '**What "hybrid" means here.** With T = 1 there is no KL term: L_vlb is L_T + L_0 and the '
            "hybrid loss adds the decoder's likelihood of x_0 to L_simple."
        )
    t, w = hybrid_weights(s, variance, vlb_weight)
    share = float((w < 1.1).mean())
    verdict = HYBRID_VERDICTS[0 if w.max() <= 2.0 else 1 if share >= 0.9 else 2]
    return HYBRID_TEXT.format(
        where=where or s.describe(),
        w_min=float(w.min()),
        w_max=float(w.max()),
        t_max=int(t[np.argmax(w)]),
        share=share,
        verdict=verdict,
    )


def recipe_hybrid_text(recipe_name: str) -> str:
    """`hybrid_text` for a recipe (its schedule, reverse variance and vlb_weight), e.g. the shipped moons-hybrid."""
    from toy_models.recipes import get_recipe
    from toy_models.schedules import schedule_from_dict

    r = get_recipe(recipe_name)
    s = schedule_from_dict(r.schedule)
    return hybrid_text(s, r.variance, r.vlb_weight, where=f"the schedule of '{recipe_name}' ({s.describe()})")


@dataclass
class PerTLoss:
    """Per-t losses of a model on a batch: t on a grid, means over the batch."""

    ts: np.ndarray  # (n,) the times
    eps_mse: np.ndarray  # (n,) E ||eps - eps_theta(x_t, t)||^2 / D  (what L_simple weighs equally)
    vb: np.ndarray  # (n,) E L_{t-1} in nats (t = 1: L_0)


def per_t_loss(
    s: Schedule, model, x0: torch.Tensor, ts, y=None, variance: str = "beta_tilde", seed: int = 0
) -> PerTLoss:
    """The eps-MSE and the bound term L_{t-1} of a model at each t in ts, with the same x_t."""
    from toy_models.diffusion import call_model, q_sample

    g = torch.Generator().manual_seed(int(seed))
    D = x0[0].numel()
    mse, vb = [], []
    with torch.no_grad():
        for t in ts:
            noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
            eps = call_model(model, q_sample(s, x0, int(t), noise), int(t), y)
            mse.append(float(((noise - eps) ** 2).reshape(x0.shape[0], -1).sum(1).mean()) / D)
            vb.append(float(vb_term(s, model, x0, int(t), y, variance, noise=noise).mean()))
    return PerTLoss(np.asarray(ts), np.asarray(mse), np.asarray(vb))


def log_grid(T: int, n: int = 40) -> list[int]:
    """About n distinct integer times from 1 to T, evenly spaced in log t."""
    return sorted(set(np.unique(np.round(np.geomspace(1, T, n)).astype(int)).tolist()))


def parameterization_roundtrip(s: Schedule, model, x_t: torch.Tensor, t: int) -> dict[str, float]:
    """Convert the model's eps to x_0 and to mu, and back: the largest error of each round trip.

    eps -> x0 -> eps, and eps -> x0 -> mu -> x0 (Ho et al. eqs. 4, 7, 11). All should be ~1e-12 in float64.
    """
    if not 1 <= int(t) <= s.T:
        raise ValueError(f"t must be an integer in 1..T = 1..{s.T}; got {t}")
    t = int(t)
    x_t = x_t.to(torch.float64)
    with torch.no_grad():
        eps = model(x_t, torch.full((x_t.shape[0],), float(t), dtype=torch.float64)).to(torch.float64)
        x0 = predict_x0_from_eps(s, x_t, t, eps)
        eps_back = predict_eps_from_x0(s, x_t, t, x0)
        mu, _, _ = q_posterior_mean_variance(s, x0, x_t, t)
        x0_back = predict_x0_from_mean(s, x_t, t, mu)
        mu_direct = (x_t - s.betas[t] / s.sqrt_one_minus_alphas_cumprod[t] * eps) / s.alphas[t].sqrt()  # eq. 11
    return {
        "ε → x₀ → ε": float((eps_back - eps).abs().max()),
        "ε → x₀ → μ → x₀": float((x0_back - x0).abs().max()),
        "μ from x₀ (eq. 7) vs μ from ε (eq. 11)": float((mu - mu_direct).abs().max()),
    }


# --- figures ----------------------------------------------------------------------------------------
def _arrow(fig: go.Figure, x_from: float, x_to: float, y: float, color: str) -> None:
    """A horizontal arrow from x_from to x_to at height y, in data coordinates."""
    fig.add_annotation(
        x=x_to,
        y=y,
        ax=x_from,
        ay=y,
        xref="x",
        yref="y",
        axref="x",
        ayref="y",
        showarrow=True,
        arrowhead=3,
        arrowcolor=color,
        arrowwidth=2,
    )


def fig_vae_diagram(T_label: str = "T") -> go.Figure:
    """x_0 -> x_1 -> ... -> x_T with q (fixed encoder) above and p_theta (learned decoder) below."""
    names = ["x₀", "x₁", "x₂", "⋯", "x_{T-1}".replace("{T-1}", "T−1"), "x_T"]
    xs = np.arange(len(names), dtype=float)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=np.zeros_like(xs),
            mode="markers+text",
            text=names,
            textposition="middle center",
            marker=dict(size=46, color=["#dfe6e9"] + ["#d6eaf8"] * 4 + ["#e8daef"], line=dict(color="#555", width=1)),
            textfont=dict(size=15),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for i in range(len(names) - 1):
        if names[i] == "⋯" or names[i + 1] == "⋯":
            continue
        _arrow(fig, xs[i] + 0.2, xs[i + 1] - 0.2, 0.35, COLORS["x_t"])  # q: forward, above
        _arrow(fig, xs[i + 1] - 0.2, xs[i] + 0.2, -0.35, COLORS["learned"])  # p_theta: backward, below
    fig.add_annotation(
        x=2.5,
        y=0.75,
        text="q(x_t | x_{t−1}): fixed encoder (adds noise, no parameters)",
        showarrow=False,
        font=dict(color=COLORS["x_t"], size=13),
    )
    fig.add_annotation(
        x=2.5,
        y=-0.75,
        text="p_θ(x_{t−1} | x_t): learned decoder (one Gaussian step each)",
        showarrow=False,
        font=dict(color=COLORS["learned"], size=13),
    )
    fig.add_annotation(x=0, y=-1.15, text="data", showarrow=False)
    fig.add_annotation(x=5, y=-1.15, text=f"latent x_{T_label} ≈ N(0, I)", showarrow=False)
    layout(
        fig,
        "Diffusion as a VAE with T latent layers",
        "position in the chain (step index)",
        "q above, p_θ below",
        height=280,
    )
    fig.update_xaxes(showticklabels=False, range=[-0.6, 5.6], zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, range=[-1.4, 1.0], zeroline=False, showgrid=False)
    return fig


def fig_terms(reports: dict[str, BoundReport], colors: dict[str, str] | None = None) -> go.Figure:
    """L_{t-1} against t (both log scale) for one or more models; L_0 and L_T as labelled markers."""
    fig = go.Figure()
    palette = [COLORS["truth"], COLORS["learned"], COLORS["x_t"], COLORS["pred_x0"]]
    for i, (name, r) in enumerate(reports.items()):
        c = (colors or {}).get(name, palette[i % len(palette)])
        t = r.times
        kl = np.maximum(finite(r.terms[1:]), 1e-12)
        fig.add_trace(
            go.Scatter(
                x=compact(t[1:]), y=compact(kl, 9), mode="lines", name=f"{name}: L_(t−1), t ≥ 2", line=dict(color=c)
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[1],
                y=[max(abs(r.l0), 1e-12)],
                mode="markers",
                name=f"{name}: |L_0| = {abs(r.l0):.3g}",
                marker=dict(color=c, symbol="diamond", size=11),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[r.T],
                y=[max(r.prior, 1e-12)],
                mode="markers",
                name=f"{name}: L_T = {r.prior:.3g}",
                marker=dict(color=c, symbol="square", size=10),
            )
        )
    layout(fig, "The bound term by term", "t (time step, log scale)", "nats per example (log scale)", height=420)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def fig_groups(
    report: BoundReport,
    true_nll: float | None = None,
    ode: float | None = None,
    title: str = "Where the bound comes from",
) -> go.Figure:
    """Bars: L_T, the KL sum, L_0, their total; beside them the true NLL and the ODE NLL if known."""
    names = list(report.groups()) + ["total bound L"]
    vals = list(report.groups().values()) + [report.total]
    colors = [COLORS["noise"], COLORS["x_t"], COLORS["pred_x0"], COLORS["learned"]]
    if true_nll is not None:
        names.append("true NLL −log q(x₀)")
        vals.append(true_nll)
        colors.append(COLORS["truth"])
    if ode is not None:
        names.append("probability-flow ODE NLL")
        vals.append(ode)
        colors.append(COLORS["data"])
    vals = finite(vals)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=vals,
            marker_color=colors,
            text=[f"{v:.3f}" for v in vals],
            textposition="outside",
            showlegend=False,
        )
    )
    return layout(fig, title, "term", "nats per example", height=380)


def fig_bound_vs_T(curves: dict[str, BoundVsT], current_T: int | None = None) -> go.Figure:
    """The bound against T (one curve per reverse variance), with the true NLL as a dashed line."""
    fig = go.Figure()
    palette = [COLORS["learned"], COLORS["x_t"], COLORS["pred_x0"]]
    r = None
    for i, (name, r) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=r.Ts,
                y=finite(r.bound),
                mode="lines+markers",
                name=f"bound L, {name}",
                line=dict(color=palette[i % len(palette)]),
                error_y=dict(type="data", array=finite(2 * r.stderr), visible=True),
            )
        )
    if r is not None:
        fig.add_trace(
            go.Scatter(
                x=[r.Ts.min(), r.Ts.max()],
                y=[r.true_nll] * 2,
                mode="lines",
                name="true NLL",
                line=dict(color=COLORS["truth"], dash="dash"),
            )
        )
    if current_T is not None:
        fig.add_vline(
            x=current_T, line=dict(color=COLORS["marker"], dash="dot"), annotation_text=f"sidebar T = {current_T}"
        )
    layout(
        fig,
        "The bound against T (same diffusion, finer steps; bars: ±2 s.e. of the gap)",
        "T (number of steps, log scale)",
        "nats per example",
        height=400,
    )
    fig.update_xaxes(type="log")
    return fig


def fig_estimators(c: EstimatorComparison, bins: int = 40, t_fixed: int | None = None) -> go.Figure:
    """Histograms of the two estimators of `estimator_pair`: one random t each (t_fixed None), or t fixed."""
    step = "one random t" if t_fixed is None else f"t = {int(t_fixed)}"
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=compact(finite(c.naive)),
            nbinsx=bins,
            name=f"naive (sampled log-ratio at {step}, × T): std {c.std_naive:.3g}",
            marker_color=COLORS["pred_x0"],
            opacity=0.6,
        )
    )
    fig.add_trace(
        go.Histogram(
            x=compact(finite(c.rearranged)),
            nbinsx=bins,
            name=f"rearranged (closed-form KL at {step}, × T): std {c.std_rearranged:.3g}",
            marker_color=COLORS["truth"],
            opacity=0.6,
        )
    )
    title = (
        "Two unbiased estimates of the bound L at one x₀ (t ~ U{1..T}, scaled by T)"
        if t_fixed is None
        else f"L_T + T × the term at t = {int(t_fixed)}, two ways, at one x₀ (not the bound: t is fixed)"
    )
    layout(fig, title, "estimate (nats)", "count of estimates", height=380, barmode="overlay")
    return fig


def fig_weights(t: np.ndarray, lam: np.ndarray, dims: int = 1) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=compact(t),
            y=compact(finite(lam, 1e-30, 1e30), 9),
            mode="lines",
            name="λ_t (L_vlb weight on ‖ε − ε_θ‖²)",
            line=dict(color=COLORS["learned"]),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[int(t.min()), int(t.max())],
            y=[1.0 / dims] * 2 if dims > 1 else [1.0, 1.0],
            mode="lines",
            name="L_simple weight (1)",
            line=dict(color=COLORS["truth"], dash="dash"),
        )
    )
    layout(
        fig,
        "The weights that turn L_(t−1) into the ε-MSE",
        "t (time step, log scale)",
        "weight (log scale)",
        height=380,
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def fig_per_t(losses: dict[str, PerTLoss]) -> go.Figure:
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("ε-MSE per dimension (what L_simple weighs equally)", "bound term L_(t−1) (nats)"),
    )
    palette = [COLORS["truth"], COLORS["learned"], COLORS["x_t"], COLORS["pred_x0"]]
    for i, (name, p) in enumerate(losses.items()):
        c = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=p.ts, y=finite(p.eps_mse), mode="lines+markers", name=name, line=dict(color=c), legendgroup=name
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=p.ts,
                y=np.maximum(finite(p.vb), 1e-9),
                mode="lines+markers",
                name=name,
                line=dict(color=c),
                legendgroup=name,
                showlegend=False,
            ),
            1,
            2,
        )
    layout(fig, "Per-t loss of each model", height=400)
    fig.update_xaxes(type="log", title_text="t (time step, log scale)")
    fig.update_yaxes(type="log", title_text="MSE per dimension", row=1, col=1)
    fig.update_yaxes(type="log", title_text="nats per example", row=1, col=2)
    return fig


def fig_samples(
    samples: dict[str, np.ndarray], reference: np.ndarray | None = None, half_width: float = 3.0
) -> go.Figure:
    n = len(samples)
    fig = make_subplots(rows=1, cols=max(n, 1), subplot_titles=list(samples) or [""])
    layout(fig, "Samples (DDIM, 100 steps, same x_T for every model)", height=400, legend_below=True)
    for i, x in enumerate(samples.values(), start=1):
        if reference is not None:
            tr = scatter2d(reference, "data", "data", size=3, opacity=0.25)
            tr.showlegend = i == 1
            fig.add_trace(tr, 1, i)
        tr = scatter2d(finite(x, -50, 50), "samples", "learned", size=3, opacity=0.6)
        tr.showlegend = i == 1
        fig.add_trace(tr, 1, i)
        fig.update_xaxes(range=[-half_width, half_width], title_text="x₁", row=1, col=i)
        fig.update_yaxes(range=[-half_width, half_width], title_text="x₂", row=1, col=i)
    return fig


# --- comparing models trained on different objectives ------------------------------------------------
@dataclass
class ModelSummary:
    """What section 5 shows of one 2D model."""

    samples: np.ndarray  # (n, 2) DDIM samples (model_summary's sample_steps)
    per_t: PerTLoss  # eps-MSE and L_{t-1} on a log grid of t
    bound: float  # mean bound on the data points, nats per example
    swd: float  # sliced Wasserstein-2 distance between samples and data

    @property
    def bound_bits_per_dim(self) -> float:
        return self.bound / (self.samples.shape[1] * LN2)


def comparison_verdict(results: dict[str, tuple[float, float]]) -> str:
    """One sentence naming the model with the lowest bound and the one whose samples are closest to the data.
    results: {model: (bound in nats, sliced W2 of its samples to the data)}."""
    if not results:
        return ""
    best_bound = min(results, key=lambda k: results[k][0])
    best_swd = min(results, key=lambda k: results[k][1])
    if best_bound == best_swd:
        return f"Here **{best_bound}** has both the lowest bound and the samples closest to the data."
    return (
        f"Here **{best_bound}** has the lowest bound and **{best_swd}** the samples closest to the data: "
        "the best likelihood and the best samples need not come from the same objective."
    )


ACTIVATION_NAMES = {"relu": "ReLU", "silu": "SiLU"}  # MLPConfig.activation, as written


def net_summary(recipe: dict) -> str:
    """A 2D recipe's network in a few words, e.g. "width 32, ReLU" or "width 64, SiLU + LayerNorm": the three
    shipped two-moons models differ in objective, and L_vlb's also in its network (recipes.py says why)."""
    from toy_models.networks import MLPConfig

    c = MLPConfig(**{k: v for k, v in recipe.get("network_config", {}).items() if k in MLPConfig.__dataclass_fields__})
    return f"width {c.width}, {ACTIVATION_NAMES[c.activation]}" + (" + LayerNorm" if c.layer_norm else "")


def model_summary(
    model,
    s: Schedule,
    data: str,
    variance: str = "beta_tilde",
    seed: int = 0,
    n_samples: int = 1000,
    n_points: int = 500,
    stride: int = 10,
    sample_steps: int = 100,
) -> ModelSummary:
    """Samples (DDIM, `sample_steps` steps), per-t losses and the bound (every `stride`-th t, see
    `bound_terms`) of a 2D model on `data` points. A network costs ~1.6 MFLOP a point and step, so the
    exact sum over 1,000 steps is left to the page's "exact" option."""
    from toy_models.data import sample_2d
    from toy_models.metrics import sliced_wasserstein
    from toy_models.samplers import sample_ddim

    x0 = torch.as_tensor(sample_2d(data, n_points, seed=seed)[0]).float()
    k = getattr(model, "num_classes", 0) or 0
    y_n = (lambda n: torch.full((n,), k, dtype=torch.long)) if k > 0 else (lambda n: None)
    g = torch.Generator().manual_seed(int(seed))
    x_T = torch.randn(n_samples, 2, generator=g)
    with torch.no_grad():
        samples = sample_ddim(model, s, x_T, steps=min(sample_steps, s.T), y=y_n(n_samples), generator=g).numpy()
    n_t = min(1000, n_points)
    per_t = per_t_loss(s, model, x0[:n_t], log_grid(s.T, 25), y=y_n(n_t), variance=variance, seed=seed)
    bound = bound_terms(s, model, x0, y=y_n(n_points), variance=variance, seed=seed, stride=stride).total
    swd = sliced_wasserstein(finite(samples, -50, 50), x0[:n_samples].numpy(), seed=seed)
    return ModelSummary(samples, per_t, bound, float(swd))


def train_and_summarise(
    recipe_name: str, steps: int, variance: str = "beta_tilde", seed: int = 0, progress=None
) -> ModelSummary:
    """Train recipe `recipe_name` for `steps` steps (toy_models.training.Trainer), then `model_summary`.

    progress: optional callable(done, total), called every few steps.
    """
    from toy_models.recipes import get_recipe
    from toy_models.training import Trainer

    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    r = get_recipe(recipe_name)
    trainer = Trainer(r.replace(steps=int(steps)), device="cpu", seed=seed)
    every = max(1, int(steps) // 50)
    trainer.run(
        int(steps),
        callback=(
            lambda rec: progress(rec["step"], int(steps)) if progress is not None and rec["step"] % every == 0 else None
        ),
    )
    return model_summary(trainer.ema_model, trainer.schedule, r.data, variance, seed)
