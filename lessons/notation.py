"""The course's notation sheet: every symbol the lessons display, with its name, its values or shape, and
the lesson where it first appears. One meaning per symbol (the team's table): alpha_t = 1 - beta_t only;
the Langevin step size is h_i; the cosine offset is delta (Nichol & Dhariwal's s); the classifier-guidance
scale is gamma (Dhariwal & Nichol's s); s_theta is the score model; eta is DDIM's stochasticity; w is the
classifier-free guidance weight. course/notation.py renders it; no streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import LESSONS


@dataclass(frozen=True)
class Symbol:
    """One row of the sheet."""

    latex: str  # the symbol, KaTeX; no "|" or "$" (the sheet is a markdown table with $...$ cells)
    name: str  # what it is, one meaning; unique in the sheet
    values: str  # its values, or its shape (plain text)
    lesson: int  # the lesson where it first appears: 1-based, in lessons.settings.LESSONS order


SYMBOLS = (
    # 1 · Forward noising
    Symbol(r"t", "time step", "integer 0 … T; t = 0 is the clean data", 1),
    Symbol(r"T", "number of diffusion steps", "integer; 1000 by default", 1),
    Symbol(r"x_0", "clean data point", "D numbers: 2 for a 2D toy, 784 pixels in [−1, 1] for a digit", 1),
    Symbol(r"x_t", "noised data at time t", "same shape as x_0", 1),
    Symbol(r"\beta_t", "noise variance added by step t", "in (0, 1), at most 0.999", 1),
    Symbol(
        r"\bar\alpha_t",
        "signal variance left at time t: the product of α_s for s ≤ t",
        "in (0, 1], falls with t; ᾱ_0 = 1",
        1,
    ),
    Symbol(r"q(x_t \mid x_{t-1})", "one forward step", "Gaussian N(√(1 − β_t) x_{t−1}, β_t I)", 1),
    Symbol(r"q(x_t \mid x_0)", "the forward process in one jump", "Gaussian N(√ᾱ_t x_0, (1 − ᾱ_t) I)", 1),
    Symbol(r"q(x_t),\ q_t", "the noised data distribution at time t (a marginal)", "a density over x_t", 1),
    Symbol(r"\mathcal{N}(\mu, \Sigma)", "Gaussian with mean μ and covariance Σ", "mean: shape of x; Σ: D × D", 1),
    Symbol(r"I", "identity matrix", "D × D", 1),
    Symbol(r"\mathrm{KL}(p \,\Vert\, q)", "Kullback–Leibler divergence of p from q", "≥ 0, in nats", 1),
    Symbol(r"I(x_0; x_t)", "mutual information of x_0 and x_t", "≥ 0, in nats", 1),
    Symbol(r"L_T", "prior term of the bound: E over x_0 of KL(q(x_T | x_0) ‖ N(0, I))", "≥ 0, in nats", 1),
    # 2 · Schedule lab
    Symbol(
        r"\mathrm{SNR}_t",
        "signal-to-noise ratio ᾱ_t / (1 − ᾱ_t); log-SNR_t is its logarithm",
        "SNR in (0, ∞], +∞ at t = 0; log-SNR falls with t",
        2,
    ),
    Symbol(r"\delta", "cosine schedule's offset (Nichol & Dhariwal call it s)", "≥ 0; 0.008 by default", 2),
    # 3 · The reverse chain
    Symbol(r"\alpha_t", "1 − β_t, the share of variance one step keeps", "in (0, 1)", 3),
    Symbol(r"\epsilon", "the Gaussian noise in x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε", "N(0, I), shape of x_0", 3),
    Symbol(r"\theta", "the network's parameters (its weights)", "a long vector", 3),
    Symbol(r"\epsilon_\theta(x_t, t)", "the network's prediction of the noise ε", "shape of x_0", 3),
    Symbol(r"\hat x_0", "predicted clean data, (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t", "shape of x_0", 3),
    Symbol(
        r"q(x_{t-1} \mid x_t, x_0)", "forward posterior: one step back when x_0 is known", "Gaussian N(μ̃_t, β̃_t I)", 3
    ),
    Symbol(r"\tilde\mu_t(x_t, x_0)", "mean of the forward posterior", "shape of x_0", 3),
    Symbol(r"\tilde\beta_t", "variance of the forward posterior, β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)", "in [0, β_t]", 3),
    Symbol(r"\mu_\theta(x_t, t)", "mean of the learned reverse step, μ̃_t(x_t, x̂_0)", "shape of x_0", 3),
    Symbol(r"\sigma_t", "standard deviation of the reverse step; σ_t² is β_t or β̃_t", "> 0", 3),
    Symbol(r"z", "fresh standard Gaussian noise drawn at a sampling step", "N(0, I), shape of x_0", 3),
    Symbol(r"\nabla \log q_t(x)", "score: the gradient of the log-density of the noised data", "shape of x_0", 3),
    Symbol(r"\eta", "DDIM's stochasticity: 0 deterministic, 1 as random as DDPM", "in [0, 1]", 3),
    Symbol(r"\tau_0, \dots, \tau_K", "DDIM's time grid", "0 = τ_0 < … < τ_K = T", 3),
    Symbol(r"\bar x,\ \kappa", "DDIM's rescaled state x/√ᾱ and its noise level √((1 − ᾱ)/ᾱ)", "shape of x_0; κ ≥ 0", 3),
    # 4 · The bound (ELBO)
    Symbol(r"p_\theta(x_{t-1} \mid x_t)", "learned reverse step", "Gaussian N(μ_θ, σ_t² I)", 4),
    Symbol(r"L", "the variational bound, L ≥ −log p_θ(x_0)", "in nats (or bits/dim)", 4),
    Symbol(r"L_{t-1}", "KL of reverse step t: KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))", "≥ 0, in nats", 4),
    Symbol(r"L_0", "reconstruction term −log p_θ(x_0 | x_1)", "in nats", 4),
    Symbol(r"L_\text{simple}", "the unweighted noise loss E‖ε − ε_θ(x_t, t)‖² (Ho et al. eq. 14)", "≥ 0", 4),
    Symbol(r"L_\text{vlb}", "the bound used as a training loss", "in nats", 4),
    Symbol(r"\lambda_t", "weight of the noise error in L_{t−1}", "≥ 0", 4),
    Symbol(r"c_t", "the part of L_{t−1} from the two variances alone", "≥ 0", 4),
    Symbol(r"\Sigma_\theta", "a learned reverse variance (Nichol & Dhariwal 2021)", "D × D, diagonal", 4),
    Symbol(r"D", "dimension of x_0", "2 for the 2D toys, 784 for a digit", 4),
    Symbol(r"\text{bits/dim}", "negative log-likelihood per dimension, in bits", "≥ 0 for discrete data", 4),
    Symbol(r"\epsilon^*", "the exact optimal noise prediction, −√(1 − ᾱ_t) ∇log q_t", "shape of x_0", 4),
    # 5 · Noise = score, and likelihood
    Symbol(r"s_\theta(x_t, t)", "the score model, −ε_θ / √(1 − ᾱ_t)", "shape of x_0", 5),
    Symbol(r"\hat\epsilon", "a noise prediction used by a sampler (learned, exact or guided)", "shape of x_0", 5),
    Symbol(r"\beta(t)", "continuous-time noise rate −d log ᾱ / dt", "≥ 0", 5),
    Symbol(r"h_i", "Langevin step size at noise level i (h_L at the last level)", "> 0", 5),
    Symbol(r"p_\theta^{\mathrm{ODE}}", "the density the probability-flow ODE defines", "a density over x_0", 5),
    # 6 · Conditional generation and guidance
    Symbol(r"y", "class label", "0 … 9 (digits) or a mixture component", 6),
    Symbol(r"\varnothing", "the null label: no class given", "—", 6),
    Symbol(r"w", "classifier-free guidance weight: 0 ignores the label, 1 is the conditional model", "≥ 0", 6),
    Symbol(r"w'", "Ho & Salimans's guidance weight, w − 1", "≥ −1", 6),
    Symbol(
        r"\epsilon_\text{cond},\ \epsilon_\text{uncond}",
        "noise predictions with and without the label",
        "shape of x_0",
        6,
    ),
    Symbol(r"\gamma", "classifier-guidance scale (Dhariwal & Nichol call it s)", "≥ 0; 1 is exact Bayes", 6),
    Symbol(r"p_\phi(y \mid x_t)", "noisy classifier with parameters φ", "probabilities over the classes", 6),
    # 7 · Inpainting
    Symbol(r"m", "inpainting mask: 1 where a pixel is known, 0 where it is to be filled", "shape of x_0, 0 or 1", 7),
    Symbol(r"\odot", "elementwise product", "—", 7),
    Symbol(
        r"\sigma", "standard deviation of the noise a DDIM step adds (Song et al. 2021, eq. 16)", "≥ 0; 0 when η = 0", 7
    ),
)


def lesson_title(i: int) -> str:
    """'3 · The reverse chain' for lesson 3."""
    return f"{i} · {LESSONS[i - 1].title}"


def table_markdown() -> str:
    """The sheet as one markdown table, each symbol as inline KaTeX ($...$)."""
    rows = ["| symbol | what it is | values / shape | first in |", "|---|---|---|---|"]
    cell = lambda text: text.replace("|", "\\|")  # a "|" in prose would end the cell
    rows += [f"| ${s.latex}$ | {cell(s.name)} | {cell(s.values)} | {lesson_title(s.lesson)} |" for s in SYMBOLS]
    return "\n".join(rows)
