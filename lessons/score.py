"""Lesson — noise prediction is score estimation; Langevin dynamics; the probability-flow ODE and likelihood.

The computations return plain numpy arrays or small dataclasses; the figure builders turn them
into plotly figures. No streamlit here (views/score.py renders).

Read beside Song et al. (2021) "Score-based generative modeling through SDEs" (eqs. 13, 39),
Vincent (2011) on denoising score matching, Song & Ermon (2019) on annealed Langevin dynamics,
and toy_models/{gmm,samplers,likelihood}.py, which hold the math this lesson runs.

Ground truth: the data is the project's Gaussian mixture (`toy_models.gmm.default_gmm`), for which
q(x_t) is again a mixture with a closed-form score and density (`AnalyticModel`). A learned model
may have been trained with another schedule than the page's: q(x_t) depends on t only through
alpha-bar_t, so `OnSchedule` evaluates it at the time of ITS schedule with the same alpha-bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from toy_models.samplers import model_predictions, t_of_rho
from toy_models.schedules import Schedule

from .figures import COLORS, compact, equal_axes, finite, layout

LN2 = math.log(2.0)
HALF_WIDTH = 3.5  # the 2D figures show [-HALF_WIDTH, HALF_WIDTH]^2 (the mixture has unit variance per axis)
STEP_RULES = ("sigma", "snr")  # Langevin step-size rules of toy_models.samplers.sample_langevin

# --- narrative ------------------------------------------------------------------------------------
INTRO = (
    "A network trained to predict the noise in x_t is, up to one factor, estimating the **score** "
    "∇ log q(x_t) — the direction in which the noisy data gets denser. Move **t** first and compare "
    "the learned arrows with the exact ones of the Gaussian mixture."
)
SCORE_IDEA = (
    "By Tweedie's formula the best guess of the noise in x_t, E[ε | x_t], is the score of q(x_t) times "
    "−√(1 − ᾱ_t): a trained noise predictor is a score model in disguise."
)
EQ_SCORE = (
    r"\nabla_{x_t}\log q(x_t) \;=\; -\,\frac{\mathbb{E}[\epsilon \mid x_t]}{\sqrt{1-\bar\alpha_t}}"
    r"\quad\Rightarrow\quad s_\theta(x_t, t) = -\,\frac{\epsilon_\theta(x_t, t)}{\sqrt{1-\bar\alpha_t}}"
)
EQ_DSM = (
    r"\begin{aligned}\mathcal{L}_{\mathrm{DSM}}(t) &= \mathbb{E}_{x_0,\epsilon}\Big\|s_\theta(x_t,t) + "
    r"\tfrac{\epsilon}{\sqrt{1-\bar\alpha_t}}\Big\|^2 \\ &= \frac{1}{1-\bar\alpha_t}\,"
    r"\mathbb{E}\,\|\epsilon_\theta(x_t,t)-\epsilon\|^2\end{aligned}"
)
EQ_FISHER = (
    r"\mathcal{L}_{\mathrm{DSM}}(\theta) - \mathcal{L}_{\mathrm{DSM}}(\text{exact}) = "
    r"\mathbb{E}_{q(x_t)}\big\|s_\theta(x_t,t)-\nabla\log q(x_t)\big\|^2"
)
EQ_LANGEVIN = r"x \leftarrow x + \tfrac{h_i}{2}\, s_\theta(x, t_i) + \sqrt{h_i}\, z,\quad z\sim\mathcal{N}(0,I)"
EQ_SDE = (
    r"dx = -\tfrac12\,\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dW,\qquad "
    r"\beta(t) = -\frac{d\log\bar\alpha(t)}{dt}"
)
EQ_ODE = (
    r"\begin{aligned}\frac{dx}{dt} &= -\tfrac12\,\beta(t)\,\big[x + \nabla_x\log q_t(x)\big] \\ "
    r"&\approx -\tfrac12\,\beta(t)\,\big[x + s_\theta(x, t)\big]\end{aligned}"
)
EQ_LIK = (
    r"\begin{aligned}\log p^{\mathrm{ODE}}_\theta(x_0) &= \log \mathcal{N}(x_T; 0, I) + "
    r"\int_0^T \nabla\!\cdot f(x(t), t)\,dt, \\ f &= -\tfrac12\beta(t)\,[x + s_\theta(x,t)]\end{aligned}"
)
WHY_WRONG = (
    "**Where the learned field is wrong, and why.** The network only ever saw x_t drawn from q(x_t): "
    "far from the data (in the corners at small t) it was never trained, and its arrows there are "
    "extrapolation. At small t the score is large and changes fast: near a component it is about "
    "−(x − μ)/σ², with σ² shrinking to that component's own variance as t → 0; and dividing ε̂ by "
    "sqrt(1 − ᾱ_t) → 0 magnifies every small error in ε̂. The ε-loss weights all t alike, so an ε error "
    "that looks small becomes a large score error there."
)
LOOK_FIELDS = (
    "Look for: where the blue dots of q(x_t) are dense, the orange learned arrows match the green exact "
    "ones; in the empty corners they need not."
)
LOOK_ERROR_MAP = (
    "Look for: the dark (large-error) cells lie outside the green contours, where q(x_t) has almost no data."
)
LOOK_ERROR_T = (
    "Look for: the two curves differ by the factor 1/(1 − ᾱ_t), so the score error climbs at "
    "small t even where the ε error does not."
)
LOOK_SCALE = "Look for: the factor is near 1 at large t and grows without bound as t → 0 (ᾱ_t → 1)."
LOOK_DSM = (
    "Look for: the rows 'weight × ε-loss' and 'DSM loss' are equal, and 'excess DSM' matches the Fisher "
    "divergence up to the Monte Carlo error below."
)
DSM_TEXT = (
    "**Denoising score matching.** We cannot regress on ∇ log q(x_t) (unknown), but we can regress on "
    "the score of q(x_t | x_0), which is −ε / sqrt(1 − ᾱ_t): its conditional mean given x_t is the true "
    "score, so the minimiser is the same (Vincent 2011). Multiply through by sqrt(1 − ᾱ_t) and it is the "
    "ε-loss of DDPM: the two objectives differ only by the weight 1/(1 − ᾱ_t) per noise level. The table "
    "computes both on the same draws, and checks Vincent's identity: the excess DSM loss over the exact "
    "model equals the squared score error (the Fisher divergence)."
)
LANGEVIN_TEXT = (
    "**Langevin dynamics** needs only a score: step up the log-density by h_i/2 times the score and add "
    "Gaussian noise of variance h_i; with a small step h_i and many steps the points are distributed "
    "approximately as q. Annealing runs it at a sequence of noise levels t_i from t = T down to t = 1, so "
    "the points first find the coarse shape of a blurry q(x_t) and then sharpen. The step size h_i must be "
    "small against the narrowest feature of q(x_t): too large, and the points overshoot, scatter or fly off. "
    "Rule 'sigma' sets h_i = h_L (1 − ᾱ_{t_i})/(1 − ᾱ_{t_L}), each level's noise variance over the last's (Song & "
    "Ermon 2019), so the slider's h_L is "
    "the step at the last, smallest level; rule 'snr' picks h_i from a target signal-to-noise ratio "
    "(Song et al. 2021) and ignores the slider."
)
LOOK_LANGEVIN = "Look for: the paths wander at the first, noisy levels and settle onto the components at the last."
LOOK_WEIGHTS = (
    "Look for: the orange bars match the green ones when the step is small enough; with too large a "
    "step they drop to zero (the particles left the plot)."
)
SDE_TEXT = (
    "**From the chain to continuous time.** One forward step x_t = √(1 − β_t) x_{t−1} + √β_t z moves x by "
    "about −½β_t x_{t−1} and adds noise of variance β_t. Read t as a continuous time and the chain is, for "
    "small β_t, the variance-preserving SDE below (Song et al. 2021). Its rate β(t) is fixed by ᾱ: "
    "ᾱ(t) = exp(−∫₀ᵗ β(u) du). The course interpolates log ᾱ linearly between integer steps, so on (n − 1, n] "
    "the rate is the constant β(t) = −log α_n = −log(1 − β_n); with that rate, one unit of time of the SDE "
    "is exactly one step of the chain (mean √α_n x, variance 1 − α_n = β_n), however large β_n. The rate "
    "β(t) is close to β_n only where β_n is small, since −log(1 − β) = β + β²/2 + … grows without bound "
    "as β → 1."
)
ODE_TEXT = (
    "**The probability-flow ODE.** Song et al. (2021) show that a deterministic flow, driven by the score, "
    "has the same marginals q_t at every t as the SDE — the same q(x_t) that the random DDPM chain visits. "
    "With the exact score the flow's marginals are exactly q_t; with a learned s_θ in its place they are "
    "only as good as s_θ. From the same starting noise the two paths differ (DDPM jitters, the ODE glides), "
    "yet both clouds at a given t should be draws of q(x_t): the table below measures it."
)
LOOK_FLOW = "Look for: the ODE paths are smooth curves; the DDPM paths from the same × zigzag."
LOOK_DENSITY_T = (
    "Look for: both clouds spread over the green density the same way; the table gives each "
    "cloud's mean log q(x_t) against that of exact draws."
)
LIK_TEXT = (
    "**Likelihood by integration.** The ODE with s_θ is a deterministic, invertible map from noise to data, "
    "so it defines a density of its own, p_θ^ODE: carry x back to t = T, evaluate the standard normal there "
    "and add the integrated divergence of the drift (the change of variables). The solver gives it up to "
    "its tolerance, and the code starts at t = 0.001 rather than 0. For 2D the divergence is exact (two "
    "backward passes); for images Hutchinson's trick estimates it with a random probe vector.  \n"
    "**Two models, not one.** Sampling with the random DDPM chain and integrating the ODE are two different "
    "generative models built from the same s_θ; their densities coincide only when s_θ is the exact score. "
    "The ELBO of the ELBO lesson is guaranteed to lie above the negative log-likelihood of the DDPM chain "
    "(Ho et al. 2020, eq. 3), not of the ODE: nothing guarantees that the ODE NLL is below it, so where it is "
    "below, that is an observation about these models."
)
LOOK_DENSITY_PAIR = (
    "Look for: whether the ODE density puts its blobs where the true one does, and where the two differ."
)
DENSITY_TEXT = (
    "**Bits per dimension, and what the numbers mean.** Bits/dim is the negative log-likelihood divided by "
    "D ln 2. For continuous 2D points it is −log q(x)/(2 ln 2), and it can be negative: a density, unlike a "
    "probability, can exceed 1 where it is concentrated. Pixels are discrete (256 values), so an image model "
    "must give each image a probability, and the two routes turn a density into one differently. The ELBO's "
    "last term L₀ uses a discretized decoder: the probability that the last Gaussian step lands in the "
    "pixel's bin of width 2/255 (Ho et al. 2020, sec. 3.3), so its bits/dim is already that of discrete "
    "data. The ODE gives a density on [−1, 1]^D; uniform dequantization adds u/127.5, u ~ U(−½, ½), to "
    "each pixel, spreading it over its bin, and the density there times the bin's volume (1/127.5)^D stands "
    "for the bin's probability (averaged over u, its log is a lower bound on the log-probability: Theis et al. "
    "2016). On the log scale "
    "the volume adds log₂ 127.5 = {offset:.3f} bits to every dimension: the code reports "
    "−log p(x)/(D ln 2) + log₂ 127.5, the density measured in pixel units 0..255 instead of model units."
)
PUBLISHED_BPD = (
    "For scale: on full MNIST, normalizing flows reach about 1.0 bits/dim (FFJORD 0.99, Glow 1.05, as "
    "reported by Grathwohl et al. 2019); DDPM-family models report 2.65 to 3.75 on CIFAR-10 (VDM 2.65, "
    "Kingma et al. 2021; DDPM ≤ 3.70 to 3.75, Ho et al. 2020). The shipped model is small and is measured "
    "here on a few held-out digits of the embedded subset with one dequantization draw: a rough reading, "
    "not a benchmark."
)
TRY_THIS = [
    "Set **t** to 1 and read the caption under the error map: the median error far from the data is several "
    "times the one inside the contours, where the network was trained.",
    "At the default T = 1000, raise the Langevin **step size h_L** (rule 'sigma') one notch at a time: at 1e-3 every "
    "particle leaves the plot and the orange bars drop to zero; one notch back (3e-4) the weights come back. "
    "Too large means large against 1 − ᾱ_1 = β_1, the last level's noise variance.",
    "Set the ODE **tolerance** to 1e-2: the solver's function evaluations drop (caption under the table), "
    "while the NLLs move by less than 0.05 nats: this smooth 2D flow needs no tight tolerance.",
    "In the sidebar set T = 50: the same journey to noise in 50 bigger steps. Run the ODE and DDPM and set the "
    "comparison t to 0: the ODE cloud's mean log q(x₀) barely moves from its value at T = 1000, while DDPM's rises "
    "above the data's, its samples crowding the components' centres. Each DDPM step draws with the variance β̃_t of "
    "q(x_{t−1} | x_t, x_0), which leaves out the spread over x_0: small for small steps, not for big ones.",
]
STEP_SIZES = (1e-6, 3e-6, 1e-5, 2e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # the Langevin h_L slider (rule "sigma")
NOTCH_FAILS, NOTCH_WORKS = 1e-3, 3e-4  # the two neighbouring notches of STEP_SIZES that the second prompt names


def look_nll(table: NllTable) -> str:
    """The sentence under the NLL table: what is guaranteed and what these numbers show (read from the table)."""
    out = []
    for name in ("exact model", "learned model"):
        ode, elbo = table.rows.get(f"ODE: {name}"), table.rows.get(f"ELBO bound: {name}")
        if ode is None or elbo is None:
            continue
        rel = "below" if ode < elbo else "above"
        out.append(f"the {name}'s ODE NLL ({ode:.3f} nats) came out {rel} its ELBO ({elbo:.3f})")
    seen = "; ".join(out)
    return (
        "Look for: the ELBO bounds only the DDPM chain's NLL. Observed here: " + seen + "."
        if seen
        else "Look for: the ELBO bounds only the DDPM chain's NLL."
    )


def continuous_rate(s: Schedule) -> dict:
    """Where beta(t) = -log(1 - beta_t) (the SDE's rate on (t-1, t]) is furthest above beta_t, float64:
    dict(t, beta, rate, ratio)."""
    b = s.betas[1:].double()
    rate = -torch.log1p(-b)
    k = int(torch.argmax(rate / b))
    return dict(t=k + 1, beta=float(b[k]), rate=float(rate[k]), ratio=float(rate[k] / b[k]))


def _more(ratio: float) -> str:
    return f"{ratio - 1:.1%} more" if ratio < 2 else f"{ratio:.3g} times as much"


def rate_example(s: Schedule, cosine: Schedule | None = None) -> str:
    """One or two sentences quoting continuous_rate for the schedule in force (and the cosine one at the same T)."""
    r = continuous_rate(s)
    txt = (
        f"In the schedule in force, {s.describe()}, the two differ most at t = {r['t']}: β_t = {r['beta']:.4g} "
        f"and β(t) = −log(1 − β_t) = {r['rate']:.4g}, {_more(r['ratio'])}."
    )
    if cosine is not None and s.name != "cosine":
        c = continuous_rate(cosine)
        txt += (
            f" The cosine schedule at the same T shows it sharply: at t = {c['t']}, β_t = {c['beta']:.4g} "
            f"but β(t) = {c['rate']:.4g}, {_more(c['ratio'])}."
        )
    return txt


def dequantization_bits() -> float:
    """log2(127.5): the bits per dimension that uniform dequantization's bin volume (1/127.5 per pixel) adds
    (toy_models.likelihood.ode_log_likelihood, data_kind="image8bit")."""
    return math.log2(127.5)


def density_text() -> str:
    return DENSITY_TEXT.format(offset=dequantization_bits())


# --- the model on the page's schedule --------------------------------------------------------------
class OnSchedule(torch.nn.Module):
    """A model trained with schedule `trained`, evaluated on schedule `s` at equal noise level.

    q(x_t) depends on t only through alpha-bar_t (Ho et al. eq. 4), so the page's time t maps to the
    trained time t' with abar_trained(t') = abar_s(t), found through rho = -log abar (samplers.t_of_rho).
    Where abar_s(t) is below the trained schedule's abar_T, t' is clamped to the trained T.
    """

    def __init__(self, model, trained: Schedule, s: Schedule):
        super().__init__()
        self.model, self.trained, self.s = model, trained, s
        self.parameterization = getattr(model, "parameterization", "eps")
        self.num_classes = getattr(model, "num_classes", 0)

    def trained_time(self, t) -> torch.Tensor:
        """t' (B,) on the trained schedule with the same alpha-bar as t on the page's schedule."""
        rho = -torch.log(self.s.alpha_bar(torch.as_tensor(t, dtype=torch.float64).cpu()))
        rho_T = -math.log(float(self.trained.alphas_cumprod[self.trained.T]))
        rho = torch.nan_to_num(rho, nan=math.inf).clamp(0.0, rho_T)  # abar underflowed to 0: the noisiest level
        return t_of_rho(self.trained, rho).clamp(0.0, float(self.trained.T))

    def forward(self, x_t, t, y=None):
        tt = self.trained_time(t).to(x_t.device, torch.float32)
        return self.model(x_t, tt, y).to(x_t.dtype)


def ode_ready(s: Schedule) -> str | None:
    """None if the probability-flow ODE can run on s; else why not (it needs 0 < abar_T, so rho_T is finite)."""
    a_T = float(s.alphas_cumprod[s.T])
    if not a_T > 0:
        return (
            f"ᾱ_T = {a_T:g} underflows to 0 for this schedule: the ODE's time variable −log ᾱ is infinite. "
            "Lower β_T or β_1 to use the ODE sections (a smaller T does not help: "
            "the sidebar's β's are scaled up as T goes down)."
        )
    return None


def _check_t_real(s: Schedule, t) -> float:
    t = float(t)
    if not (math.isfinite(t) and 0.0 < t <= s.T):
        raise ValueError(f"t must lie in (0, T] = (0, {s.T}]; got {t!r}")
    return t


def _times(x, t) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), dtype=torch.float64)


def model_score(model, s: Schedule, x: torch.Tensor, t: float, y=None) -> torch.Tensor:
    """s_theta(x, t) = -eps_theta(x, t) / sqrt(1 - abar(t))   (Song et al. 2021, sec. 3; Ho et al. eq. 11).

    x (B, D); returns (B, D) float64. Works for any parameterization via samplers.model_predictions.
    """
    t = _check_t_real(s, t)
    with torch.no_grad():
        eps, _ = model_predictions(model, s, x, _times(x, t), y)
    return -eps.to(torch.float64) / math.sqrt(1.0 - float(s.alpha_bar(torch.tensor(t))))


def score_scale(s: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """(t = 1..T, 1 / sqrt(1 - abar_t)): the factor that turns a noise prediction into a score."""
    t = np.arange(1, s.T + 1)
    return t, (1.0 / s.sqrt_one_minus_alphas_cumprod[1:]).numpy()


def grid(half_width: float = HALF_WIDTH, n: int = 21) -> tuple[np.ndarray, torch.Tensor]:
    """(axis (n,), points (n*n, 2) float64): an n x n grid over [-h, h]^2, row-major in y then x."""
    if int(n) < 2 or not half_width > 0:
        raise ValueError(f"need n >= 2 and half_width > 0; got n={n}, half_width={half_width}")
    ax = np.linspace(-half_width, half_width, int(n))
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    return ax, torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1))


def q_t_samples(gmm, s: Schedule, t: float, n: int, seed: int = 0) -> torch.Tensor:
    """n draws of q(x_t): x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, x_0 ~ the mixture (Ho et al. eq. 4)."""
    g = torch.Generator().manual_seed(int(seed))
    x0, _ = gmm.sample(int(n), generator=g)
    a = float(s.alpha_bar(torch.tensor(float(t))))
    return math.sqrt(a) * x0 + math.sqrt(1 - a) * torch.randn(x0.shape, generator=g, dtype=torch.float64)


# --- 1. the learned field against the exact score ---------------------------------------------------
@dataclass
class FieldComparison:
    """Learned and exact scores at one t, on a grid and on draws of q(x_t)."""

    t: float  # the time
    alpha_bar: float  # abar(t)
    axis: np.ndarray  # (n,) grid coordinates
    points: np.ndarray  # (n*n, 2) grid points
    learned: np.ndarray  # (n*n, 2) s_theta on the grid
    exact: np.ndarray  # (n*n, 2) grad log q_t on the grid
    log_q: np.ndarray  # (n*n,) log q_t on the grid
    fisher: float  # E_{q_t} |s_theta - grad log q_t|^2 (Monte Carlo over draws of q_t)
    fisher_se: float  # its standard error
    relative: float  # fisher / E_{q_t} |grad log q_t|^2
    eps_mse: float  # E_{q_t} |eps_theta - eps*|^2 = (1 - abar) fisher

    @property
    def error(self) -> np.ndarray:
        """(n*n,) |s_theta - grad log q_t| on the grid."""
        return np.linalg.norm(self.learned - self.exact, axis=1)

    def error_where(self, dense: bool, level: float = 1e-3) -> float:
        """Median grid error where q_t is above (dense) or below level * max q_t."""
        m = self.log_q >= self.log_q.max() + math.log(level)
        m = m if dense else ~m
        return float(np.median(self.error[m])) if m.any() else float("nan")


def compare_fields(
    model, exact, s: Schedule, t: float, n_grid: int = 21, n_samples: int = 2000, seed: int = 0, y=None
) -> FieldComparison:
    """The learned score -eps_theta / sqrt(1 - abar) beside the exact grad log q_t (AnalyticModel.score).

    The error is measured two ways: on the grid (everywhere, data or not), and as the Fisher divergence
    E_{q_t} |s_theta - grad log q_t|^2 over n_samples draws of q_t (where the model was trained).
    """
    t = _check_t_real(s, t)
    ax, pts = grid(HALF_WIDTH, n_grid)
    a = float(s.alpha_bar(torch.tensor(t)))
    learned = model_score(model, s, pts, t, y).numpy()
    ex = exact.score(pts, _times(pts, t), y).numpy()
    log_q = exact.dist.log_prob(pts, a).numpy()
    xs = q_t_samples(exact.dist, s, t, n_samples, seed)
    s_star = exact.score(xs, _times(xs, t), y)
    d2 = ((model_score(model, s, xs, t, y) - s_star) ** 2).sum(1).numpy()
    s2 = (s_star**2).sum(1).numpy()
    fisher = float(d2.mean())
    return FieldComparison(
        t,
        a,
        ax,
        pts.numpy(),
        learned,
        ex,
        log_q,
        fisher,
        float(d2.std(ddof=1) / math.sqrt(len(d2))),
        fisher / float(s2.mean()),
        (1 - a) * fisher,
    )


def error_vs_t(model, exact, s: Schedule, times, n: int = 1000, seed: int = 0, y=None) -> dict[str, np.ndarray]:
    """Per t: the eps error E|eps_theta - eps*|^2 and the score error (Fisher divergence) on draws of q_t.

    The score error is the eps error divided by 1 - abar_t, so it blows up at small t.
    """
    eps_err, fisher, rel = [], [], []
    for t in times:
        t = _check_t_real(s, t)
        xs = q_t_samples(exact.dist, s, t, n, seed)
        s_star = exact.score(xs, _times(xs, t), y)
        ds = model_score(model, s, xs, t, y) - s_star
        a = float(s.alpha_bar(torch.tensor(t)))
        f = float((ds**2).sum(1).mean())
        fisher.append(f)
        eps_err.append((1 - a) * f)
        rel.append(f / float((s_star**2).sum(1).mean()))
    return {
        "t": np.asarray(times, dtype=float),
        "eps_mse": np.array(eps_err),
        "fisher": np.array(fisher),
        "relative": np.array(rel),
    }


def log_times(T: int, n: int = 24) -> list[int]:
    """About n distinct integer times from 1 to T, log-spaced (small t is where things change)."""
    return sorted(set(np.unique(np.round(np.geomspace(1, T, n)).astype(int)).tolist()))


# --- 2. denoising score matching = the eps-loss, reweighted ------------------------------------------
@dataclass
class DsmCheck:
    """Denoising score matching and the eps-loss at one t, on the same draws (x_0, eps)."""

    t: int
    weight: float  # 1 / (1 - abar_t): DSM = weight * eps-loss
    eps_loss: float  # E |eps_theta(x_t, t) - eps|^2 (the DDPM loss at this t)
    dsm: float  # E |s_theta(x_t, t) + eps / sqrt(1 - abar_t)|^2
    dsm_exact: float  # the same for the exact score: the loss's floor (the target is noisy)
    fisher: float  # E |s_theta - grad log q_t|^2 on the same x_t
    excess_se: float  # standard error of (dsm - dsm_exact), paired


def dsm_check(model, exact, s: Schedule, t: int, n: int = 4000, seed: int = 0, y=None) -> DsmCheck:
    """DSM loss (Vincent 2011, eq. 4 with q_sigma = q(x_t | x_0)) beside the eps-loss of Ho et al. eq. 14.

    Identity: DSM(theta) = eps-loss / (1 - abar_t), draw by draw. Vincent's theorem: DSM(theta) -
    DSM(exact) = E|s_theta - grad log q_t|^2 in expectation (Monte Carlo here; compare with excess_se).
    """
    t = int(_check_t_real(s, t))
    g = torch.Generator().manual_seed(int(seed))
    x0, _ = exact.dist.sample(int(n), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    a = float(s.alphas_cumprod[t])
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    target = -eps / math.sqrt(1 - a)  # grad log q(x_t | x_0)
    s_theta, s_star = model_score(model, s, xt, t, y), exact.score(xt, _times(xt, t), y)
    with torch.no_grad():
        eps_theta, _ = model_predictions(model, s, xt, _times(xt, t), y)
    per_dsm = ((s_theta - target) ** 2).sum(1)
    per_exact = ((s_star - target) ** 2).sum(1)
    excess = per_dsm - per_exact
    return DsmCheck(
        t,
        1.0 / (1 - a),
        float(((eps_theta.double() - eps) ** 2).sum(1).mean()),
        float(per_dsm.mean()),
        float(per_exact.mean()),
        float(((s_theta - s_star) ** 2).sum(1).mean()),
        float(excess.std() / math.sqrt(len(excess))),
    )


# --- 3. annealed Langevin dynamics -----------------------------------------------------------------
@dataclass
class LangevinResult:
    """An annealed Langevin run (samplers.sample_langevin) and what it recovered."""

    samples: np.ndarray  # (n, 2) final points (non-finite rows replaced by the clip value)
    paths: np.ndarray  # (K, n_paths, 2) the first n_paths particles after each kept step
    path_t: np.ndarray  # (K,) the noise level t of each kept step
    weights: np.ndarray  # (C,) fraction of the finite, in-range samples nearest each component
    true_weights: np.ndarray  # (C,) the mixture's weights
    mean_log_q: float  # mean log q(x_0) of the in-range samples, nats
    data_log_q: float  # E log q(x_0) under the data (Monte Carlo), nats
    escaped: float  # fraction of samples that left [-10, 10]^2 or became non-finite
    nfe: int  # model evaluations

    @property
    def weight_error(self) -> float:
        """max_k |recovered weight - true weight|."""
        return float(np.abs(self.weights - self.true_weights).max())


def langevin_run(
    model,
    s: Schedule,
    gmm,
    n: int = 1000,
    levels: int = 100,
    n_steps_each: int = 10,
    step_size: float = 2e-5,
    step_rule: str = "sigma",
    snr: float = 0.3,
    seed: int = 0,
    n_paths: int = 6,
    max_kept: int = 300,
    y=None,
) -> LangevinResult:
    """Run sample_langevin (Song & Ermon 2019, Algorithm 1) from N(0, I) and score the result.

    Each sample is assigned to the component of highest responsibility under the mixture; the
    recovered weights are the fractions per component among the samples that stayed in range.
    """
    from toy_models.samplers import SamplerInfo, sample_langevin

    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {STEP_RULES}; got {step_rule!r}")
    levels = min(int(levels), s.T)
    g = torch.Generator().manual_seed(int(seed))
    x_T = torch.randn(int(n), 2, generator=g, dtype=torch.float64)
    total = levels * int(n_steps_each)
    stride = max(1, math.ceil(total / max_kept))
    kept, kept_t = [x_T[:n_paths].clone()], [float(s.T)]

    def cb(step):
        if (step.i + 1) % stride == 0 or step.i + 1 == total:
            kept.append(step.x_next[:n_paths].detach().clone())
            kept_t.append(step.t)

    info = SamplerInfo()
    with np.errstate(all="ignore"):
        x = sample_langevin(
            model,
            s,
            x_T,
            steps=levels,
            y=y,
            generator=g,
            callback=cb,
            n_steps_each=int(n_steps_each),
            step_size=float(step_size),
            step_rule=step_rule,
            snr=float(snr),
            denoise_final=False,
            info=info,
        )
    x = x.double()
    ok = torch.isfinite(x).all(1) & (x.abs() <= 10).all(1)
    xs = x[ok]
    C = gmm.num_components
    if xs.shape[0]:
        lab = gmm.responsibilities(xs).argmax(1)
        w = np.bincount(lab.numpy(), minlength=C) / xs.shape[0]
        mlq = float(gmm.log_prob(xs).mean())
    else:
        w, mlq = np.zeros(C), float("nan")
    ref, _ = gmm.sample(20_000, generator=torch.Generator().manual_seed(int(seed) + 1))
    return LangevinResult(
        finite(x.numpy(), -10, 10),
        finite(torch.stack(kept).numpy(), -10, 10),
        np.array(kept_t),
        w,
        gmm.weights.numpy(),
        mlq,
        float(gmm.log_prob(ref).mean()),
        1.0 - float(ok.double().mean()),
        info.nfe,
    )


# --- 4. probability-flow ODE against DDPM, from the same noise ------------------------------------------
@dataclass
class FlowPaths:
    """States of two samplers started from the same x_T; xs[k] is the state at time ts[k] (T down to 0)."""

    ode_t: np.ndarray  # (K1,) times of the ODE's states
    ode_x: np.ndarray  # (K1, n, 2)
    ddpm_t: np.ndarray  # (K2,)
    ddpm_x: np.ndarray  # (K2, n, 2)
    ode_nfe: int
    ddpm_nfe: int
    ode_steps: int  # the ODE solver's steps (Heun), min(ode_steps asked, T)


def _record(sampler, model, s, x_T, stride, **kw):
    from toy_models.samplers import SamplerInfo

    ts, xs = [float(s.T)], [x_T.clone()]

    def cb(step):
        if (step.i + 1) % stride == 0 or step.t_next == 0:
            ts.append(step.t_next)
            xs.append(step.x_next.detach().clone())

    info = SamplerInfo()
    sampler(model, s, x_T, callback=cb, info=info, **kw)
    return np.array(ts), finite(torch.stack(xs).double().numpy(), -50, 50), info.nfe


def ode_vs_ddpm(
    model, s: Schedule, n: int = 500, seed: int = 0, ode_steps: int = 100, max_kept: int = 200, y=None
) -> FlowPaths:
    """The probability-flow ODE (samplers.sample_ode, Heun on the DDIM grid) and DDPM ancestral sampling
    (samplers.sample_ddpm) from the same x_T ~ N(0, I)."""
    from toy_models.samplers import sample_ddpm, sample_ode

    g = torch.Generator().manual_seed(int(seed))
    x_T = torch.randn(int(n), 2, generator=g, dtype=torch.float64)
    ode_steps = max(1, min(int(ode_steps), s.T))
    ot, ox, on = _record(sample_ode, model, s, x_T, max(1, ode_steps // max_kept), steps=ode_steps, method="heun", y=y)
    dt, dx, dn = _record(
        sample_ddpm, model, s, x_T, max(1, s.T // max_kept), y=y, generator=torch.Generator().manual_seed(int(seed) + 1)
    )
    return FlowPaths(ot, ox, dt, dx, on, dn, ode_steps)


def state_at(ts: np.ndarray, xs: np.ndarray, t: float) -> tuple[float, np.ndarray]:
    """(kept time nearest t, the states there)."""
    k = int(np.argmin(np.abs(ts - float(t))))
    return float(ts[k]), xs[k]


def marginal_check(gmm, s: Schedule, t: float, clouds: dict[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """Mean log q_t of each cloud against E_{q_t}[log q_t] (Monte Carlo, 20,000 draws): equal if the cloud ~ q_t."""
    a = float(s.alpha_bar(torch.tensor(float(t))))
    ref = (
        q_t_samples(gmm, s, max(float(t), 1e-9), 20_000, seed)
        if t > 0
        else gmm.sample(20_000, generator=torch.Generator().manual_seed(int(seed)))[0]
    )
    out = {"q(x_t) itself (20,000 exact draws)": float(gmm.log_prob(ref, a).mean())}
    for name, x in clouds.items():
        out[name] = float(gmm.log_prob(torch.as_tensor(x, dtype=torch.float64), a).mean())
    return out


# --- 5. likelihood by integrating the ODE --------------------------------------------------------------
def exact_ode_model(gmm, s: Schedule):
    """The exact eps* of the mixture (toy_models.gmm.AnalyticModel), differentiable in x for the ODE's divergence."""
    from toy_models.gmm import AnalyticModel

    return AnalyticModel(gmm, s)


@dataclass
class OdeLikelihood:
    """log p(x) by the probability-flow ODE for a batch of points."""

    log_px: np.ndarray  # (B,) nats
    nfe: int  # function evaluations of the adaptive solver
    rtol: float  # the solver's tolerance (rtol = atol)


def ode_log_px(model, s: Schedule, x: torch.Tensor, rtol: float = 1e-5, y=None, progress=None) -> OdeLikelihood:
    """toy_models.likelihood.ode_log_likelihood (Song et al. 2021, eq. 39) with exact divergence, rtol = atol."""
    from toy_models.likelihood import ode_log_likelihood

    if not 0 < float(rtol) < 1:
        raise ValueError(f"rtol must lie in (0, 1); got {rtol!r}")
    r = ode_log_likelihood(model, s, x, y=y, rtol=float(rtol), atol=float(rtol), progress=progress)
    return OdeLikelihood(r.log_px.detach().double().numpy(), int(r.nfe), float(rtol))


def density_grid(
    model, s: Schedule, n: int = 60, rtol: float = 1e-4, y=None, progress=None
) -> tuple[np.ndarray, OdeLikelihood]:
    """(axis (n,), log p on the n x n grid (n*n,)) of the model's ODE density, one batched solve."""
    ax, pts = grid(HALF_WIDTH, n)
    return ax, ode_log_px(model, s, pts, rtol, y, progress)


def bits_per_dim(nats: float, dims: int) -> float:
    """nats per example -> bits per dimension: nats / (D ln 2)."""
    return float(nats) / (int(dims) * LN2)


@dataclass
class NllTable:
    """Mean NLL of held-out points, nats and bits/dim, by each route."""

    rows: dict  # name -> mean NLL in nats per example
    dims: int

    def bpd(self) -> dict:
        return {k: bits_per_dim(v, self.dims) for k, v in self.rows.items()}


def nll_table(gmm, x0: torch.Tensor, ode: dict[str, np.ndarray], elbo: dict[str, float]) -> NllTable:
    """True NLL -log q(x_0) beside ODE NLLs (name -> (B,) log p) and ELBO bounds (name -> nats)."""
    rows = {"true −log q(x₀) (closed form)": float(-gmm.log_prob(x0).mean())}
    rows.update({f"ODE: {k}": float(-np.mean(v)) for k, v in ode.items()})
    rows.update({f"ELBO bound: {k}": float(v) for k, v in elbo.items()})
    return NllTable(rows, x0.shape[1])


def elbo_nll(
    model,
    s: Schedule,
    x0: torch.Tensor,
    data_kind: str = "continuous",
    stride: int = 1,
    seed: int = 0,
    progress=None,
    y=None,
    chunk_elements: int = 40_000,
    exact_head: int = 100,
) -> np.ndarray:
    """The variational bound L = L_T + L_0 + sum_{t=2}^T L_{t-1} (Ho et al. 2020, eq. 5) per example, nats:
    the ELBO lesson's `bound_terms` (every t <= exact_head, then every `stride`-th t), per example."""
    from lessons.elbo_lesson import bound_terms

    return bound_terms(
        s,
        model,
        x0,
        y=y,
        data_kind=data_kind,
        seed=seed,
        stride=stride,
        chunk_elements=chunk_elements,
        progress=progress,
        exact_head=exact_head,
    ).per_example


@dataclass
class MnistLikelihood:
    """Bits/dim of a few held-out digits by the ODE (Hutchinson) and by the ELBO."""

    ode_bpd: np.ndarray  # (B,) bits/dim, probability-flow ODE with Hutchinson's divergence, 8-bit dequantized
    elbo_bpd: np.ndarray  # (B,) bits/dim of the variational bound with the discretized decoder
    nfe: int
    n_probes: int


def mnist_bits_per_dim(
    model,
    s: Schedule,
    x0: torch.Tensor,
    y=None,
    n_probes: int = 1,
    rtol: float = 1e-4,
    elbo_stride: int = 10,
    seed: int = 0,
    progress=None,
) -> MnistLikelihood:
    """ODE bits/dim (Song et al. 2021, app. D.2: Hutchinson, uniform dequantization) beside the ELBO's
    bits/dim (Ho et al. 2020, sec. 4.2: discretized Gaussian decoder), for x0 (B, 1, 28, 28) in [-1, 1].

    progress(fraction) is called from 0 to 1 over both computations (ODE first, 80% of the work).
    """
    from toy_models.likelihood import ode_log_likelihood

    g = torch.Generator().manual_seed(int(seed))
    p = (lambda f: progress(0.8 * f)) if progress else None
    r = ode_log_likelihood(
        model,
        s,
        x0,
        y=y,
        rtol=rtol,
        atol=rtol,
        divergence="hutchinson",
        n_probes=int(n_probes),
        data_kind="image8bit",
        generator=g,
        progress=(lambda d, tot: p(d / tot)) if p else None,
    )
    D = x0[0].numel()
    pe = elbo_nll(
        model,
        s,
        x0,
        data_kind="image8bit",
        stride=elbo_stride,
        seed=seed,
        y=y,
        progress=(lambda d, tot: progress(0.8 + 0.2 * d / tot)) if progress else None,
    )
    return MnistLikelihood(
        r.bits_per_dim.detach().double().numpy(), np.asarray(pe) / (D * LN2), int(r.nfe), int(n_probes)
    )


# --- figures ---------------------------------------------------------------------------------------
def _arrow_markers(points: np.ndarray, vectors: np.ndarray, ref: float, max_size: float = 16.0) -> dict:
    """Arrow markers for a quiver plot: plotly's "arrow" symbol rotated to each vector's direction
    (marker.angle is clockwise from up, so angle = atan2(v_x, v_y)), sized min(1, |v| / ref) * max_size."""
    v = finite(vectors)
    n = np.linalg.norm(v, axis=1)
    angle = np.degrees(np.arctan2(v[:, 0], v[:, 1]))
    size = 3.0 + (max_size - 3.0) * np.minimum(1.0, n / max(ref, 1e-12))
    return dict(x=compact(points[:, 0]), y=compact(points[:, 1]), angle=compact(angle, 1), size=compact(size, 1))


def fig_fields(fc: FieldComparison, backdrop: np.ndarray | None = None, max_arrows: int = 21) -> go.Figure:
    """Learned score arrows beside the exact score arrows (same scale), over draws of q(x_t)."""
    n = len(fc.axis)
    keep = np.arange(0, n, max(1, math.ceil(n / max_arrows)))
    idx = (keep[:, None] * n + keep[None, :]).ravel()
    ref = float(np.percentile(np.linalg.norm(fc.exact[idx], axis=1), 90))
    fig = make_subplots(
        1,
        2,
        subplot_titles=(f"learned  −ε̂/√(1−ᾱ)  at t = {fc.t:g}", f"exact  ∇ log q(x_t)  at t = {fc.t:g}"),
        horizontal_spacing=0.08,
    )
    for col, (vec, role, name) in enumerate(
        [(fc.learned, "learned", "learned score"), (fc.exact, "truth", "exact score")], 1
    ):
        if backdrop is not None:
            b = compact(backdrop)
            fig.add_trace(
                go.Scatter(
                    x=b[:, 0],
                    y=b[:, 1],
                    mode="markers",
                    name="x_t ~ q(x_t)",
                    showlegend=col == 1,
                    marker=dict(size=3, color=COLORS["x_t"], opacity=0.25),
                ),
                1,
                col,
            )
        a = _arrow_markers(fc.points[idx], vec[idx], ref)
        fig.add_trace(
            go.Scatter(
                x=a["x"],
                y=a["y"],
                mode="markers",
                name=name,
                marker=dict(symbol="arrow", angle=a["angle"], size=a["size"], color=COLORS[role], line=dict(width=0)),
                customdata=compact(np.linalg.norm(finite(vec[idx]), axis=1)),
                hovertemplate="x₁ %{x}<br>x₂ %{y}<br>|score| %{customdata:.3g}<extra></extra>",
            ),
            1,
            col,
        )
    layout(fig, f"Score fields (arrow size ∝ |score|, capped at |score| = {ref:.3g})", height=430, legend_below=True)
    for c in (1, 2):
        fig.update_xaxes(title_text="x₁", range=[-HALF_WIDTH, HALF_WIDTH], row=1, col=c)
        fig.update_yaxes(
            title_text="x₂",
            range=[-HALF_WIDTH, HALF_WIDTH],
            row=1,
            col=c,
            scaleanchor="x" if c == 1 else "x2",
            scaleratio=1,
        )
    return fig


def fig_error_map(fc: FieldComparison) -> go.Figure:
    """Heatmap of log10 |s_theta - grad log q_t| on the grid, with contours of log q_t."""
    n = len(fc.axis)
    err = np.log10(np.maximum(fc.error, 1e-6)).reshape(n, n)
    fig = go.Figure(
        go.Heatmap(
            x=compact(fc.axis),
            y=compact(fc.axis),
            z=compact(finite(err, -6, 6)),
            colorscale="Reds",
            colorbar=dict(title="log₁₀ |error|"),
            hovertemplate="x₁ %{x}<br>x₂ %{y}<br>log₁₀|error| %{z}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Contour(
            x=compact(fc.axis),
            y=compact(fc.axis),
            z=compact(finite(fc.log_q, -50, 10).reshape(n, n)),
            contours=dict(coloring="none", start=float(fc.log_q.max()) - 9, end=float(fc.log_q.max()), size=1.5),
            line=dict(color=COLORS["truth"], width=1),
            showscale=False,
            name="log q(x_t) contours",
            showlegend=True,
        )
    )
    layout(
        fig,
        f"Where the learned score is wrong at t = {fc.t:g}<br><sup>green: contours of log q(x_t)</sup>",
        "x₁",
        "x₂",
        height=430,
    )
    return equal_axes(fig, HALF_WIDTH)


def fig_scale(t: np.ndarray, factor: np.ndarray, t_marker: float | None = None) -> go.Figure:
    """1 / sqrt(1 - abar_t) against t (log y): the factor from eps to score."""
    fig = go.Figure(
        go.Scatter(
            x=t,
            y=compact(finite(factor, 1e-6, 1e12), 5),
            mode="lines",
            name="1/√(1−ᾱ_t)",
            line=dict(color=COLORS["truth"]),
        )
    )
    if t_marker is not None:
        fig.add_vline(x=float(t_marker), line=dict(color=COLORS["marker"], dash="dash"))
    layout(fig, "The factor from noise to score, 1/√(1−ᾱ_t)", "t (time step)", "factor (per unit of ε)", height=330)
    fig.update_yaxes(type="log")
    return fig


def fig_error_vs_t(e: dict[str, np.ndarray], t_marker: float | None = None) -> go.Figure:
    """eps error and score error of the learned model against t (log-log)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=e["t"],
            y=compact(finite(e["eps_mse"], 1e-12, 1e12), 6),
            name="ε error E|ε̂−ε*|²",
            mode="lines+markers",
            line=dict(color=COLORS["learned"], dash="dot"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=e["t"],
            y=compact(finite(e["fisher"], 1e-12, 1e12), 6),
            name="score error E|s_θ−∇log q|² = ε error/(1−ᾱ)",
            mode="lines+markers",
            line=dict(color=COLORS["learned"]),
        )
    )
    if t_marker is not None:
        fig.add_vline(x=float(t_marker), line=dict(color=COLORS["marker"], dash="dash"))
    layout(
        fig,
        "The learned model's error on draws of q(x_t)",
        "t (time step, log scale)",
        "mean squared error",
        height=330,
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def fig_langevin(r: LangevinResult, backdrop: np.ndarray) -> go.Figure:
    """Final Langevin samples over the data, with a few particles' paths."""
    fig = go.Figure()
    b = compact(backdrop)
    fig.add_trace(
        go.Scatter(
            x=b[:, 0], y=b[:, 1], mode="markers", name="data x₀", marker=dict(size=3, color=COLORS["data"], opacity=0.3)
        )
    )
    x = compact(r.samples)
    fig.add_trace(
        go.Scatter(
            x=x[:, 0],
            y=x[:, 1],
            mode="markers",
            name="Langevin samples",
            marker=dict(size=3, color=COLORS["learned"], opacity=0.6),
        )
    )
    for k in range(r.paths.shape[1]):
        p = compact(r.paths[:, k])
        fig.add_trace(
            go.Scatter(
                x=p[:, 0],
                y=p[:, 1],
                mode="lines",
                name="particle paths",
                showlegend=k == 0,
                line=dict(color=COLORS["x_t"], width=1),
                opacity=0.8,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=p[:1, 0],
                y=p[:1, 1],
                mode="markers",
                showlegend=False,
                name="start",
                marker=dict(color=COLORS["noise"], size=7, symbol="x"),
            )
        )
    layout(fig, "Annealed Langevin dynamics: paths from noise (×) to samples", "x₁", "x₂", height=430)
    return equal_axes(fig, 4.5)


def fig_weights(r: LangevinResult) -> go.Figure:
    """Recovered component weights against the mixture's."""
    k = [f"component {i}" for i in range(len(r.weights))]
    fig = go.Figure(
        [
            go.Bar(x=k, y=compact(r.true_weights), name="true weight", marker_color=COLORS["truth"]),
            go.Bar(x=k, y=compact(r.weights), name="fraction of Langevin samples", marker_color=COLORS["learned"]),
        ]
    )
    layout(fig, f"Component weights (largest gap {r.weight_error:.3f})", "mixture component", "weight", height=330)
    return fig


def fig_flow(fp: FlowPaths, n_paths: int = 12) -> go.Figure:
    """Paths of the same starting points under the ODE and under DDPM."""
    fig = make_subplots(
        1, 2, subplot_titles=("probability-flow ODE (deterministic)", "DDPM (stochastic)"), horizontal_spacing=0.08
    )
    for col, (xs, name, color) in enumerate(
        [(fp.ode_x, "ODE path", COLORS["truth"]), (fp.ddpm_x, "DDPM path", COLORS["learned"])], 1
    ):
        for k in range(min(n_paths, xs.shape[1])):
            p = compact(xs[:, k])
            fig.add_trace(
                go.Scatter(
                    x=p[:, 0], y=p[:, 1], mode="lines", name=name, showlegend=k == 0, line=dict(color=color, width=1)
                ),
                1,
                col,
            )
        s0, s1 = compact(xs[0, :n_paths]), compact(xs[-1, :n_paths])
        fig.add_trace(
            go.Scatter(
                x=s0[:, 0],
                y=s0[:, 1],
                mode="markers",
                name="x_T (same for both)",
                showlegend=col == 1,
                marker=dict(color=COLORS["noise"], size=7, symbol="x"),
            ),
            1,
            col,
        )
        fig.add_trace(
            go.Scatter(
                x=s1[:, 0],
                y=s1[:, 1],
                mode="markers",
                name="x₀",
                showlegend=col == 1,
                marker=dict(color=COLORS["pred_x0"], size=6),
            ),
            1,
            col,
        )
    layout(fig, "From the same noise: ODE vs DDPM", height=430, legend_below=True)
    for c in (1, 2):
        fig.update_xaxes(title_text="x₁", range=[-4, 4], row=1, col=c)
        fig.update_yaxes(
            title_text="x₂", range=[-4, 4], row=1, col=c, scaleanchor="x" if c == 1 else "x2", scaleratio=1
        )
    return fig


def fig_density_at_t(axis: np.ndarray, log_q: np.ndarray, clouds: dict[str, np.ndarray], t: float) -> go.Figure:
    """q(x_t) as a heatmap with the ODE and DDPM clouds at (about) t."""
    n = len(axis)
    fig = go.Figure(
        go.Heatmap(
            x=compact(axis),
            y=compact(axis),
            z=compact(np.exp(finite(log_q, -700, 50)).reshape(n, n), 4),
            colorscale="Greens",
            colorbar=dict(title="q(x_t)"),
            name="exact q(x_t)",
        )
    )
    colors = [COLORS["truth"], COLORS["learned"]]
    for (name, x), c, sym in zip(clouds.items(), colors, ("circle-open", "circle")):
        x = compact(x)
        fig.add_trace(
            go.Scatter(
                x=x[:, 0],
                y=x[:, 1],
                mode="markers",
                name=name,
                marker=dict(size=4, color=c if sym == "circle" else "#000000", symbol=sym, opacity=0.6),
            )
        )
    layout(fig, f"The density q(x_t) at t = {t:g} and both clouds there", "x₁", "x₂", height=430)
    return equal_axes(fig, HALF_WIDTH)


def fig_density_pair(axis: np.ndarray, panels: dict[str, np.ndarray]) -> go.Figure:
    """Side-by-side heatmaps of log-densities on the same grid and colour range (nats)."""
    n = len(axis)
    names = list(panels)
    fig = make_subplots(1, len(names), subplot_titles=names, horizontal_spacing=0.06)
    hi = max(float(np.max(v)) for v in panels.values())
    for col, name in enumerate(names, 1):
        z = compact(np.clip(finite(panels[name], -50, 50), hi - 12, hi).reshape(n, n))
        fig.add_trace(
            go.Heatmap(
                x=compact(axis),
                y=compact(axis),
                z=z,
                zmin=hi - 12,
                zmax=hi,
                colorscale="Viridis",
                showscale=col == len(names),
                colorbar=dict(title="log p (nats)"),
                name=name,
                hovertemplate="x₁ %{x}<br>x₂ %{y}<br>log p %{z}<extra></extra>",
            ),
            1,
            col,
        )
        fig.update_xaxes(title_text="x₁", row=1, col=col)
        fig.update_yaxes(title_text="x₂", row=1, col=col, scaleanchor=f"x{'' if col == 1 else col}", scaleratio=1)
    layout(fig, "Log-density on a grid (clipped 12 nats below the peak)", height=400)
    return fig


def fig_nll(table: NllTable) -> go.Figure:
    """Bits/dim of each route as bars."""
    bpd = table.bpd()
    color = [
        COLORS["truth"] if k.startswith("true") else COLORS["learned"] if "learned" in k else COLORS["x_t"] for k in bpd
    ]
    fig = go.Figure(
        go.Bar(
            x=list(bpd),
            y=compact(finite(list(bpd.values()), -1e3, 1e3)),
            marker_color=color,
            text=[f"{v:.3f}" for v in bpd.values()],
            textposition="outside",
        )
    )
    layout(
        fig,
        "NLL of held-out points, bits/dim (lower is better; an ELBO bounds its DDPM chain's NLL)",
        "route",
        "bits/dim",
        height=360,
    )
    return fig
