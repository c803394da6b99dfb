"""The shared frame of the course, without streamlit: the lesson catalogue, the sidebar state,
and its round trip through URL query parameters.

Every sidebar choice (data, schedule, T, beta_1, beta_T or s, seed) lives in the URL, so a
copied link reproduces the exact view. A hand-edited URL never breaks a page: unknown names
fall back to the default, out-of-range numbers are clamped, non-numbers reset, and each such
repair comes back as a human-readable notice that the page shows.

Adding a lesson page is one line in `LESSONS`; until its file exists it is listed as "coming".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from toy_models.schedules import REFERENCE_T, beta_range_for_T, make_schedule


@dataclass(frozen=True)
class Lesson:
    """One entry of the course, in teaching order."""

    title: str  # shown in the navigation and on the home page
    summary: str  # one sentence: what the student will see
    page: str | None = None  # "views/<stem>.py"; listed as "coming" until that file exists
    icon: str = ":material/school:"  # material icon for the navigation


# The course in order. A lesson shows as "coming" until its views/<stem>.py exists; a new lesson
# is one line here. The url path of a page is its file stem (e.g. /forward).
LESSONS = (
    Lesson(
        "Forward noising",
        "Watch data dissolve into Gaussian noise, one small Markov step at a time, "
        "and check that the closed form q(x_t | x_0) jumps to the same place.",
        "views/forward.py",
        ":material/blur_on:",
    ),
    Lesson(
        "Schedule lab",
        "Compare linear, cosine and sigmoid schedules: beta_t, alpha-bar_t, the signal "
        "left and the log-SNR, on the same digit at the same t.",
        "views/schedule_lab.py",
        ":material/tune:",
    ),
    Lesson(
        "The reverse chain",
        "Undo the noise one Gaussian step at a time: x_T -> ... -> x_0, with the "
        "predicted noise and the predicted x_0 at every step.",
        "views/reverse_chain.py",
        ":material/undo:",
    ),
    Lesson(
        "The bound (ELBO)",
        "The training objective term by term: the prior term, the KL of each reverse "
        "step, the reconstruction term, and why the simple noise loss is a reweighting.",
        "views/elbo.py",
        ":material/functions:",
    ),
    Lesson(
        "Noise = score, and likelihood",
        "The predicted noise is the score of q(x_t) in disguise; the "
        "probability-flow ODE built on it is a deterministic model whose log-likelihood can be computed "
        "exactly, beside the stochastic chain's bound.",
        "views/score.py",
        ":material/explore:",
    ),
    Lesson(
        "Conditional generation and guidance",
        "Class labels, classifier guidance and classifier-free "
        "guidance: how the guidance weight trades diversity for fidelity.",
        "views/conditional.py",
        ":material/label:",
    ),
    Lesson(
        "Inpainting",
        "Fill in missing pixels: replacing the known part at every step versus a model trained on masked images.",
        "views/inpainting.py",
        ":material/format_paint:",
    ),
    Lesson(
        "Training lab",
        "Train a small model live and watch the loss per noise level and the samples improve.",
        "views/training_lab.py",
        ":material/model_training:",
    ),
)

DATA_2D = ("moons", "swissroll", "rings", "checkerboard", "gmm")  # the 2D toys (toy_models.data)
DATA_CHOICES = DATA_2D + ("mnist",)  # every dataset the sidebar offers
SCHEDULES = ("linear", "cosine", "sigmoid")  # the schedules the sidebar offers
T_MIN, T_MAX = 2, 2000  # the app's range of T (a chain needs two steps to have a middle; 2000 is cheap to chain)
BETA_MIN, BETA_MAX = 1e-5, 0.999  # allowed beta_1 and beta_T
S_MIN, S_MAX = 0.0, 0.5  # allowed cosine offset s
SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class FrameState:
    """The shared sidebar choices; every field is one URL query parameter of the same name."""

    data: str = "moons"  # one of DATA_CHOICES
    schedule: str = "linear"  # one of SCHEDULES
    T: int = 1000  # number of diffusion steps, T_MIN..T_MAX
    beta_1: float = 1e-4  # first beta (linear, sigmoid) as stated for T = 1000; scaled by 1000 / T
    beta_T: float = 0.02  # last beta (linear, sigmoid) as stated for T = 1000; scaled by 1000 / T
    s: float = 0.008  # cosine offset (delta on the pages; s in Nichol & Dhariwal 2021, eq. 17)
    seed: int = 0  # seed of every random draw on the page

    @property
    def is_2d(self) -> bool:
        return self.data in DATA_2D


DEFAULT = FrameState()


def _parse_choice(name, raw, choices, default, notices):
    if raw is None:
        return default
    if raw in choices:
        return raw
    notices.append(f"Unknown {name} {raw!r} in the URL; valid: {', '.join(choices)}. Using {default!r}.")
    return default


def _parse_number(name, raw, lo, hi, default, notices, integer=False):
    """A float (or int) from a URL string: non-numbers reset to the default, others clamped."""
    if raw is None:
        return default
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or (integer and not v.is_integer()):
        notices.append(
            f"{name}={raw!r} in the URL is not a valid {'integer' if integer else 'number'}; "
            f"using the default {default}."
        )
        return default
    clamped = min(max(v, lo), hi)
    if clamped != v:
        notices.append(f"{name}={raw} is outside [{lo:g}, {hi:g}]; clamped to {clamped:g}.")
    return int(clamped) if integer else clamped


def parse_params(params: dict) -> tuple[FrameState, list[str]]:
    """FrameState from URL query parameters (strings), with a notice for every repair made."""
    notices: list[str] = []
    g = params.get
    state = FrameState(
        data=_parse_choice("data", g("data"), DATA_CHOICES, DEFAULT.data, notices),
        schedule=_parse_choice("schedule", g("schedule"), SCHEDULES, DEFAULT.schedule, notices),
        T=_parse_number("T", g("T"), T_MIN, T_MAX, DEFAULT.T, notices, integer=True),
        beta_1=_parse_number("beta_1", g("beta_1"), BETA_MIN, BETA_MAX, DEFAULT.beta_1, notices),
        beta_T=_parse_number("beta_T", g("beta_T"), BETA_MIN, BETA_MAX, DEFAULT.beta_T, notices),
        s=_parse_number("s", g("s"), S_MIN, S_MAX, DEFAULT.s, notices),
        seed=_parse_number("seed", g("seed"), 0, SEED_MAX, DEFAULT.seed, notices, integer=True),
    )
    return state, notices


def to_params(state: FrameState) -> dict[str, str]:
    """The URL query parameters of a state (only those the schedule uses), as strings."""
    d = {k: (f"{v:g}" if isinstance(v, float) else str(v)) for k, v in asdict(state).items()}
    unused = ("beta_1", "beta_T") if state.schedule == "cosine" else ("s",)
    return {k: v for k, v in d.items() if k not in unused}


def parse_int_param(name: str, raw, lo: int, hi: int, default: int, notices: list, step: int = 1) -> int:
    """A page-level integer parameter (a t slider, a digit index): clamped, snapped to the slider's step grid
    lo, lo + step, ..., or reset with a notice."""
    v = _parse_number(name, raw, lo, hi, default, notices, integer=True)
    if step > 1 and raw is not None and (v - lo) % step:
        snapped = min(lo + round((v - lo) / step) * step, hi - (hi - lo) % step)
        notices.append(f"{name}={raw} is not on the slider's grid ({lo}, {lo + step}, ...); using {snapped}.")
        v = snapped
    return v


def parse_float_param(
    name: str, raw, lo: float, hi: float, default: float, notices: list, step: float | None = None
) -> float:
    """A page-level float parameter (a float slider): clamped, snapped to the slider's step grid, or reset."""
    v = _parse_number(name, raw, lo, hi, default, notices)
    if step and raw is not None and v != default:
        snapped = min(max(lo + round((v - lo) / step) * step, lo), hi)
        snapped = float(f"{snapped:.12g}")  # 0.1 * 3 -> 0.3, not 0.30000000000000004
        if abs(snapped - v) > 1e-9 * max(1.0, abs(v)):
            notices.append(f"{name}={raw} is not on the slider's grid (step {step:g}); using {snapped:g}.")
        v = snapped
    return v


def parse_choice_param(name: str, raw, choices, default, notices: list):
    """One of `choices` (of any type) from its URL text, str(choice); an unknown one resets with a notice."""
    if raw is None:
        return default
    for c in choices:
        if format_param(c) == raw:
            return c
    try:  # numbers written another way: 2e-5 for 2e-05, 10.0 for 10
        v = float(raw)
        for c in choices:
            if isinstance(c, (int, float)) and not isinstance(c, bool) and math.isclose(v, c, rel_tol=1e-9):
                return c
    except (TypeError, ValueError):
        pass
    notices.append(
        f"Unknown {name} {raw!r} in the URL; valid: {', '.join(format_param(c) for c in choices)}. "
        f"Using {format_param(default)}."
    )
    return default


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_bool_param(name: str, raw, default: bool, notices: list) -> bool:
    """A toggle or checkbox: 1/0 (also true/false, yes/no, on/off); anything else resets with a notice."""
    if raw is None:
        return default
    word = str(raw).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    notices.append(f"{name}={raw!r} in the URL is not 1 or 0; using {format_param(default)}.")
    return default


def parse_multi_param(name: str, raw, choices, default, notices: list, max_selections: int | None = None) -> list:
    """A multiselect: comma-separated choices; unknown items and duplicates are dropped, the rest cut to
    max_selections, each repair with a notice. An empty string is an empty selection."""
    if raw is None:
        return list(default)
    by_text = {format_param(c): c for c in choices}
    items = [w.strip() for w in str(raw).split(",") if w.strip()]
    bad = [w for w in items if w not in by_text]
    if bad:
        notices.append(f"{name}: {', '.join(repr(w) for w in bad)} not among the choices; dropped.")
    out = []
    for w in items:
        if w in by_text and by_text[w] not in out:
            out.append(by_text[w])
    if max_selections is not None and len(out) > max_selections:
        notices.append(f"{name}: at most {max_selections} choices; kept the first {max_selections}.")
        out = out[:max_selections]
    return out


def format_param(value) -> str:
    """The URL text of a widget value: 1/0 for booleans, a short exact float, comma-joined lists."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_param(v) for v in value)
    return str(value)


def schedule_kwargs(name: str, state: FrameState) -> dict:
    """make_schedule keyword arguments for schedule `name` from the sidebar values.

    The sidebar's beta_1 and beta_T are stated for T = 1000 (REFERENCE_T) and scaled to the T in force
    (schedules.beta_range_for_T), so a smaller T means fewer, bigger steps over the same journey to noise.
    """
    if name == "cosine":
        return {"s": state.s}
    if name in ("linear", "sigmoid"):
        beta_start, beta_end = beta_range_for_T(state.beta_1, state.beta_T, state.T)
        return {"beta_start": beta_start, "beta_end": beta_end}
    raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")


def build_schedule(state: FrameState, name: str | None = None):
    """The Schedule the sidebar describes (or schedule `name` with the same T and parameters)."""
    name = name or state.schedule
    return make_schedule(name, state.T, **schedule_kwargs(name, state))


NOISE_REACHED = 0.05  # abar_T above this: x_T is visibly not N(0, I)


def schedule_summary(s) -> str:
    """One sidebar line: the beta range in force at this T and abar_T, e.g. 'β_1 = 0.002, β_T = 0.4 ...'."""
    b = s.betas[1:]
    abar_T = s.alphas_cumprod[-1].item()
    text = f"In force at T = {s.T}: β_1 = {b[0].item():.3g}, β_T = {b[-1].item():.3g}; ᾱ_T = {abar_T:.2g}"
    if s.name in ("linear", "sigmoid") and s.T != REFERENCE_T:
        text += f" (β's stated for T = {REFERENCE_T}, scaled by {REFERENCE_T}/{s.T}, at most 0.999)"
    return text + "."


def prior_mismatch(s) -> str | None:
    """A warning when the schedule does not reach noise (abar_T > NOISE_REACHED), else None.

    Every sampler starts from x_T ~ N(0, I); when q(x_T) keeps a share abar_T of the data's signal,
    that start is not what the forward process ends at, and the samples pay for it.
    """
    abar_T = s.alphas_cumprod[-1].item()
    if abar_T <= NOISE_REACHED:
        return None
    return (
        f"This schedule does not reach noise: ᾱ_T = {abar_T:.2f}, so x_T keeps √ᾱ_T = {abar_T**0.5:.2f} of "
        f"x_0 and q(x_T) is not N(0, I). The samplers on this page still start from N(0, I), so what they "
        f"draw is not the data. Raise β_T or T to reach noise (ᾱ_T ≤ {NOISE_REACHED})."
    )


def device_label(device: str) -> str:
    """A sidebar line naming the device, e.g. 'cuda (NVIDIA H200)'."""
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return device
