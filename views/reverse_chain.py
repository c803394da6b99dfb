"""Lesson 3 page — the reverse Markov chain. Thin: widgets, cached calls into lessons.reverse_chain, render."""

from functools import partial
from typing import Any, NamedTuple

import numpy as np
import streamlit as st
import torch

from course import (
    chart,
    device,
    download,
    equation,
    explain,
    exports,
    frame,
    ground_truth_gmm,
    lazy_section,
    model_for,  # "use my model": the sidebar's choice of a model trained in the training lab
    points_2d,
    show_source,
    try_checkpoint,
    url_bool,
    url_choice,
    url_float,
    url_int,
    url_multi,
)
from lessons import reverse_chain as lesson
from lessons.settings import FrameState, build_schedule
from toy_models.diffusion import p_mean_variance, q_posterior_mean_variance
from toy_models.gmm import kl_mixture_to_gaussian, reverse_conditional
from toy_models.samplers import ddim_step, sample_ddim, sample_ddpm

N_PICK = 400  # samples of q(x_t) drawn in the picking figure
N_BACKDROP = 300  # data points drawn faint behind the chain (each SVG marker costs a slider move)
PARTICLES = (500, 1000, 2000)  # choices of chain size


# --- cached computations ------------------------------------------------------------------------
@st.cache_data(max_entries=64)
def reverse_step(state: FrameState, T: int, level: float, x1: float, x2: float):
    return lesson.reverse_step(ground_truth_gmm(), build_schedule(state), T, level, [x1, x2])


@st.cache_data(max_entries=32)
def kl_curve(state: FrameState, level: float, x1: float, x2: float):
    return lesson.kl_vs_steps(ground_truth_gmm(), build_schedule(state), level, [x1, x2], seed=state.seed)


@st.cache_data(max_entries=32)
def q_t_samples(state: FrameState, level: float):
    return lesson.q_t_cloud(ground_truth_gmm(), build_schedule(state), level, N_PICK, state.seed)


@st.cache_data(max_entries=4, show_spinner="Running the exact chain (every step) ...")
def exact_chain(state: FrameState, n: int):
    s = build_schedule(state)
    return lesson.ddpm_chain(lesson.MixtureEpsModel(ground_truth_gmm(), s), s, n, state.seed)


@st.cache_data(max_entries=4, show_spinner="Running the learned chain (every step) ...")
def learned_chain(name: str, n: int, seed: int):
    ck, _ = try_checkpoint(name)
    return lesson.ddpm_chain(ck.model, ck.schedule, n, seed)


@st.cache_data(max_entries=6, show_spinner="Sampling digits ...")
def digit_chain(sampler: str, steps: int, variance: str, n: int, seed: int, dev: str):
    ck, _ = try_checkpoint("mnist", dev)
    return lesson.digit_chain(ck.model, ck.schedule, int(n), seed, sampler, steps, variance, device=dev)  # no label


N_IDENTITY, IDENTITY_STEPS = 64, 20  # digits and DDIM steps of the "when is the digit chosen" measurement


@st.cache_data(max_entries=4, show_spinner="Asking the judge when the digit is chosen ...")
def identity_numbers(seed: int, dev: str):
    """{t: fraction of digits whose x̂_0 at t the judge reads as the final digit}, or the judge's error text."""
    from toy_models.metrics import JudgeError, load_judge

    ck, _ = try_checkpoint("mnist", dev)
    try:
        judge = load_judge()
    except JudgeError as e:
        return str(e)
    chain = lesson.digit_chain(
        ck.model, ck.schedule, N_IDENTITY, seed, "ddim", min(IDENTITY_STEPS, ck.schedule.T), device=dev
    )
    Tm = ck.schedule.T
    return lesson.identity_by_step(chain, judge, [round(f * Tm) for f in (0.9, 0.6, 0.3)])


@st.cache_data(max_entries=8)
def data_log_density(seed: int) -> float:
    """Mean log-density of 2,000 draws of the mixture itself: what the chain's samples should match."""
    g = ground_truth_gmm()
    return lesson.mean_log_density(g, g.sample(2000, generator=torch.Generator().manual_seed(seed + 7))[0].numpy())


@st.cache_resource
def long_runs() -> dict:
    """Finished full DDPM digit chains, shared by every session (key -> DigitChain); at most 4 kept."""
    return {}


def ddpm_with_progress(n: int, variance: str, seed: int, dev: str):
    """The full DDPM chain behind a progress bar, computed once per (n, variance, seed, device)."""
    store, key = long_runs(), (n, variance, seed, dev)
    if key not in store:
        ck, _ = try_checkpoint("mnist", dev)
        bar = st.progress(0.0, text="DDPM: every step ...")
        last = [-1]

        def progress(f):
            pct = int(f * 100)
            if pct != last[0]:
                last[0] = pct
                bar.progress(min(f, 1.0), text=f"DDPM step {round(f * ck.schedule.T)} of {ck.schedule.T}")

        chain = lesson.digit_chain(
            ck.model,
            ck.schedule,
            int(n),
            seed,
            "ddpm",
            None,
            variance,  # no label
            progress=progress,
            device=dev,
        )
        bar.empty()
        while len(store) >= 4:
            store.pop(next(iter(store)))
        store[key] = chain
    return store[key]


@st.cache_data(max_entries=4)
def exact_animation(state: FrameState, n: int):
    return lesson.fig_chain_animation(exact_chain(state, n), "exact")


@st.cache_data(max_entries=4)
def learned_animation(name: str, n: int, seed: int):
    return lesson.fig_chain_animation(learned_chain(name, n, seed), f"learned ({name})")


def chain_gif(run, title: str, data: np.ndarray):
    """The maker of a 2D chain's GIF (x_t and the predicted x̂_0 at up to 60 steps, over the data). Only the
    kept steps are held until the click, not the whole chain (a per-session copy of cache_data's result)."""
    keep = exports.frame_indices(len(run.ts))
    px0 = run.pred_x0[np.minimum(keep, len(run.pred_x0) - 1)]
    px0[keep == len(run.ts) - 1] = run.xs[-1]  # at t = 0 the prediction is the sample itself
    return partial(
        exports.gif_from_points,
        run.xs[keep],
        [f"{title}: t = {t:.0f}" for t in run.ts[keep]],
        extra={"predicted x̂_0": px0},
        backdrop=data,
        half_width=3.5,
        max_points=1000,
    )


def digits_gif(chain, label: str) -> bytes:
    """A digit chain as a GIF: x_t (top row) and the predicted x̂_0 (bottom row) at each kept step."""
    px0 = np.concatenate([chain.pred_x0, chain.xs[-1:]])
    titles = [f"{label}: t = {t:.0f}  (top: x_t, bottom: x̂_0)" for t in chain.ts]
    return exports.gif_from_images(np.concatenate([chain.xs, px0], 1), titles, cols=chain.xs.shape[1])


def describe(ck) -> str:
    side = ck.sidecar or {}
    steps = side.get("steps", side.get("train_steps", ck.recipe.get("steps", "?")))
    return (
        f"recipe **{ck.recipe.get('name', '?')}** ({ck.recipe.get('description', '')}), trained with "
        f"schedule **{ck.schedule.describe()}**, {steps} training steps"
    )


# --- the page: one function per section --------------------------------------------------------------
def intro() -> None:
    st.title("3 · The reverse chain")
    explain(lesson.INTRO)
    equation(lesson.EQ_REVERSE)


# 1. why small steps --------------------------------------------------------------------------------
def why_small_steps() -> None:
    st.header("Why small steps")
    explain(lesson.WHY_GAUSSIAN)
    equation(lesson.EQ_WHY)
    explain(lesson.WHY_GAUSSIAN_AFTER)
    explain(lesson.SMALL_STEPS)


def follow_a_pick() -> None:
    """A click on a sample of q(x_t) (the picking figure) moves the x_t sliders there."""
    pick = st.session_state.get("rc_pick")
    points = getattr(getattr(pick, "selection", None), "points", None) if pick is not None else None
    if points:
        p = points[0]
        xy = (
            round(min(max(float(p.get("x", 0.0)), -3.0), 3.0), 1),
            round(min(max(float(p.get("y", 0.0)), -3.0), 3.0), 1),
        )
        if xy != st.session_state.get("rc_last_pick"):
            st.session_state["rc_last_pick"] = xy
            st.session_state["rc_x1"], st.session_state["rc_x2"] = xy


def one_reverse_step(state: FrameState) -> tuple[int, float, float, float]:
    """The exact reverse conditional at one x_t, and the picking figure; returns (T, level, x1, x2)."""
    c1, c2 = st.columns(2)
    T_steps = url_choice(
        "cut",
        "steps the noise is cut into (T)",
        lesson.T_CHOICES,
        2,
        key="rc_T",
        widget=c1.select_slider,
        help="The same total noise (the sidebar schedule's ᾱ_T) cut into T steps.",
    )
    level = url_float(
        "level",
        "noise level of x_t (fraction of the way to x_T)",
        0.05,
        1.0,
        0.5,
        0.05,
        key="rc_level",
        widget=c2.slider,
    )
    c1, c2 = st.columns(2)
    x1 = url_float("x1", "x_t, first coordinate", -3.0, 3.0, 0.0, 0.1, key="rc_x1", widget=c1.slider)  # a click
    x2 = url_float("x2", "x_t, second coordinate", -3.0, 3.0, 0.0, 0.1, key="rc_x2", widget=c2.slider)  # sets them too
    r = reverse_step(state, T_steps, level, x1, x2)
    c1, c2 = st.columns([3, 2])
    chart(lesson.fig_reverse_step(r), key="fig_step", where=c1)
    samples, a_lvl = q_t_samples(state, level)
    chart(
        lesson.fig_pick_xt(samples, r.x_t, a_lvl), key="rc_pick", on_select="rerun", selection_mode="points", where=c2
    )
    explain(lesson.LOOK_STEP)
    explain(lesson.LOOK_PICK, where=c2)
    explain(
        f"With **T = {T_steps}** this is step t = {r.t} with **β_t = {r.beta_t:.4g}**; x_t has ᾱ_t = "
        f"{r.abar_t:.4g}. The exact conditional has **{r.n_peaks} peak{'s' if r.n_peaks != 1 else ''}** on the "
        f"grid, **KL(exact ‖ best Gaussian) = {r.kl:.3g} nats** and KL(exact ‖ small-step Gaussian) = "
        f"{r.kl_small:.3g} nats."
    )
    return T_steps, level, x1, x2


def kl_against_steps(state: FrameState, T_steps: int, level: float, x1: float, x2: float) -> None:
    equation(lesson.EQ_KL)
    curve = kl_curve(state, level, x1, x2)
    chart(lesson.fig_kl_curve(curve, T_steps), key="fig_kl")
    ratio = curve.kl_mean[0] / max(curve.kl_mean[-1], 1e-300)
    st.caption(
        f"From T = {curve.Ts[0]} to T = {curve.Ts[-1]} the average KL to the best Gaussian falls from "
        f"{curve.kl_mean[0]:.3g} to {curve.kl_mean[-1]:.3g} nats ({ratio:.2g}×), and to the small-step Gaussian "
        f"from {curve.kl_small_mean[0]:.3g} to {curve.kl_small_mean[-1]:.3g} nats."
    )
    explain(lesson.LOOK_KL)
    explain(lesson.TRY_SMALL)
    show_source(reverse_conditional, lesson.small_step_gaussian, kl_mixture_to_gaussian, lesson.one_step_schedule)


# 2. the posterior given x_0 ----------------------------------------------------------------------------
def step_given_x0(state: FrameState) -> None:
    s = build_schedule(state)
    st.header("The reverse step when x_0 is known")
    explain(lesson.posterior_text(s))
    equation(lesson.EQ_POSTERIOR)
    c1, c2, c3, c4 = st.columns(4)
    a0 = url_float("x0_1", "x_0, first", -3.0, 3.0, 1.5, 0.1, key="rc_x0a", widget=c1.slider)
    b0 = url_float("x0_2", "x_0, second", -3.0, 3.0, 1.0, 0.1, key="rc_x0b", widget=c2.slider)
    at = url_float("xt_1", "x_t, first", -3.0, 3.0, -1.0, 0.1, key="rc_xta", widget=c3.slider)
    bt = url_float("xt_2", "x_t, second", -3.0, 3.0, -0.5, 0.1, key="rc_xtb", widget=c4.slider)
    t_post = url_int("tpost", "t (time step of x_t)", 1, s.T, max(1, s.T // 10), key="rc_tpost")
    pv = lesson.posterior_view(s, [a0, b0], [at, bt], t_post)
    c1, c2 = st.columns([3, 2])
    chart(lesson.fig_posterior(pv), key="fig_post", where=c1)
    c2.metric("weight of x_0 in the mean", f"{pv.coef1:.4g}")
    c2.metric("weight of x_t in the mean", f"{pv.coef2:.4g}")
    c2.metric("variance β̃_t (vs β_t)", f"{pv.var:.4g}", help=f"β_t = {pv.beta_t:.4g}")
    frac = pv.fraction_to_x0
    c2.caption(
        f"The mean sits {frac:.1%} of the way from x_t to x_0."
        if np.isfinite(frac)
        else "x_0 = x_t: the mean is a scaled copy of them."
    )
    explain(lesson.LOOK_POSTERIOR)
    explain(lesson.try_posterior(s))
    show_source(q_posterior_mean_variance)


# 3. the chain, every step -------------------------------------------------------------------------------
class Chains(NamedTuple):
    """The section's two 2D chains, run once per page run and handed to each of its parts."""

    name: str  # the data (2D)
    n: int  # particles
    ex: Any  # the exact chain (the Gaussian mixture's own ε, the sidebar's schedule)
    model: str  # the learned model's name: the shipped one, or the student's trained on the same data
    ck: Any  # its checkpoint, when it loaded
    lr: Any  # its chain, or None when it did not load
    backdrop: np.ndarray  # draws of the mixture, faint behind the exact chain
    data_l: np.ndarray  # data points, faint behind the learned chain


def the_chain(state: FrameState) -> Chains:
    s = build_schedule(state)
    st.header("The chain, every step: exact vs learned")
    explain(lesson.CHAIN)
    equation(lesson.EQ_MEAN)
    name = state.data if state.is_2d else "gmm"
    n = url_choice("particles", "particles", PARTICLES, 500, key="rc_n", widget=st.select_slider)
    ex = exact_chain(state, n)
    model = model_for(name)  # the shipped model, or the user's own trained on the same data
    ck, err = try_checkpoint(model)
    if err:
        st.warning(f"No learned model for **{name}**: {err} The exact model is shown alone.", icon=":material/warning:")
        lr = None
    else:
        st.caption(
            f"Learned model: {describe(ck)}. It runs with its own schedule; the exact model follows the "
            f"sidebar ({s.describe()})."
        )
        lr = learned_chain(model, n, state.seed)
    backdrop = ground_truth_gmm().sample(N_BACKDROP, generator=torch.Generator().manual_seed(state.seed))[0].numpy()
    data_l = points_2d(name, N_BACKDROP, state.seed).numpy()
    return Chains(name, n, ex, model, ck, lr, backdrop, data_l)


@st.fragment  # moving the step reruns only this figure: the rest of the page is not re-sent
def chain_at_step(state: FrameState, c: Chains):
    s, ex, lr = build_schedule(state), c.ex, c.lr
    t_step = url_int("step", "reverse step t (T → 0)", 0, s.T, s.T // 2, key="rc_step")
    views = [lesson.StepView(ex, s, ex.index_of(t_step), "exact (Gaussian mixture)", c.backdrop)]
    note = f"Exact chain: {len(ex.ts) - 1} steps of {c.n} points in {ex.seconds:.2f} s (when first computed)."
    if lr is not None:
        t_l = round(t_step * c.ck.schedule.T / s.T)
        views.append(lesson.StepView(lr, c.ck.schedule, lr.index_of(t_l), f"learned ({c.name})", c.data_l))
        note += f" Learned chain, at the same fraction of its T = {c.ck.schedule.T}: {lr.seconds:.2f} s."
    chart(lesson.fig_chain_steps(views), key="fig_chain_step")
    k = ex.index_of(t_step)
    if k < len(ex.pred_x0) and t_step >= 1:
        note += (
            f" Spread of the exact model's x̂_0 at t = {int(round(ex.ts[k]))}: **{lesson.spread(ex.pred_x0[k]):.2f}** "
            f"(the data's: {lesson.spread(c.backdrop):.2f})."
        )
    st.caption(note)
    explain(lesson.LOOK_CHAIN)


def play_both_chains(state: FrameState, c: Chains) -> None:
    """Both chains as browser animations (and GIFs), computed and sent once their section is opened."""
    play, play_open = lazy_section("Play it: both chains in your browser", key="rc_play", icon=":material/play_arrow:")
    if not play_open:
        return
    with play:
        cols = st.columns(2)
        explain(lesson.LOOK_ANIM)
        chart(exact_animation(state, c.n), key="anim_exact", where=cols[0])
        download(
            "the exact chain as a GIF",
            chain_gif(c.ex, "exact", c.backdrop),
            f"reverse_exact_T{build_schedule(state).T}_n{c.n}.gif",
            key="dl_rc_exact",
            where=cols[0],
            help="x_t and x̂_0 at up to 60 steps (1,000 points); made when you click.",
        )
        if c.lr is not None:
            chart(learned_animation(c.model, c.n, state.seed), key="anim_learned", where=cols[1])
            download(
                "the learned chain as a GIF",
                chain_gif(c.lr, f"learned ({c.name})", c.data_l),
                f"reverse_learned_{c.name}_n{c.n}.gif",
                key="dl_rc_learned",
                where=cols[1],
            )


def samples_as_npz(state: FrameState, c: Chains) -> None:
    sample_arrays = dict(exact_x0=c.ex.xs[-1], exact_schedule=build_schedule(state).describe(), seed=state.seed)
    if c.lr is not None:
        sample_arrays.update(learned_x0=c.lr.xs[-1], learned_model=c.name, learned_schedule=c.ck.schedule.describe())
    download(
        "the samples x_0 as .npz",
        partial(exports.npz_bytes, **sample_arrays),
        f"reverse_samples_n{c.n}.npz",
        key="dl_rc_npz",
        help="exact_x0" + (" and learned_x0" if c.lr is not None else "") + f": ({c.n}, 2) each, with the schedule "
        "and the seed.",
    )


def chosen_particles(state: FrameState, c: Chains) -> None:
    st.subheader("Chosen particles, every step")
    idx = url_multi("follow", "particles to follow", range(20), [0, 1, 2], key="rc_idx", max_selections=8)
    cols = st.columns(2)
    chart(lesson.fig_paths(c.ex, idx, "exact", c.backdrop), key="paths_exact", where=cols[0])
    if c.lr is not None:
        chart(lesson.fig_paths(c.lr, idx, f"learned ({c.name})", c.data_l), key="paths_learned", where=cols[1])
    st.caption(
        f"Mean log-density under the mixture of the exact chain's {c.n} samples: "
        f"**{lesson.mean_log_density(ground_truth_gmm(), c.ex.xs[-1]):.2f}** nats (2,000 draws of the mixture "
        f"itself: {data_log_density(state.seed):.2f})."
    )
    explain(lesson.LOOK_PATHS)
    explain(lesson.TRY_CHAIN)
    show_source(lesson.ddpm_chain, sample_ddpm, p_mean_variance, lesson.mean_drift)


# 4. MNIST ------------------------------------------------------------------------------------------------
def digits_through_the_chain(state: FrameState) -> None:
    """The MNIST section: a DDIM chain at once, DDPM on request, x_t and x̂_0 at chosen steps and at any kept step."""
    dev = device()
    mk, err = try_checkpoint("mnist", dev)
    if err:
        st.warning(f"No MNIST model: {err}", icon=":material/warning:")
        return
    st.caption(f"MNIST model: {describe(mk)}; device {dev}.")
    Tm = mk.schedule.T
    c1, c2, c3 = st.columns(3)
    n_dig = url_int("ndig", "digits", 2, 10, 8, key="rc_ndig", widget=c1.slider)
    ddim_steps = url_int("ddim", "DDIM steps", 1, min(Tm, 200), min(20, Tm), key="rc_ddim", widget=c2.slider)
    variance = url_choice(
        "variance",
        "DDPM variance σ_t²",
        lesson.VARIANCE_CHOICES,
        lesson.VARIANCE_CHOICES[0],
        key="rc_var",
        widget=c3.radio,
        horizontal=True,
        help=lesson.VARIANCE_TEXT,
        format_func=lambda v: "β̃_t (posterior)" if v == "beta_tilde" else "β_t",
    )
    explain(lesson.VARIANCE_TEXT)
    ddim = digit_chain("ddim", ddim_steps, "beta_tilde", n_dig, state.seed, dev)
    run_ddpm = url_bool(
        "ddpm", f"also run DDPM, all {Tm} steps (slow on a CPU: a progress bar shows it)", key="rc_ddpm"
    )
    ddpm = ddpm_with_progress(n_dig, variance, state.seed, dev) if run_ddpm else None
    shown = ddpm if ddpm is not None else ddim
    label = "DDPM" if ddpm is not None else f"DDIM ({ddim_steps} steps)"
    digits_at_chosen_steps(state, dev, shown, label)
    compare = [("DDIM", ddim)] + ([("DDPM", ddpm)] if ddpm is not None else [])
    ddim_against_ddpm(compare)
    digits_downloads(state, shown, label, compare, n_dig)
    explain(lesson.TRY_MNIST)
    show_source(lesson.digit_chain, sample_ddim, ddim_step)


def digits_at_chosen_steps(state: FrameState, dev: str, shown, label: str) -> None:
    """x_t and x̂_0 at six steps, when the judge reads the final digit in x̂_0, and any one kept step."""
    rows = lesson.pick_rows(shown.ts, np.linspace(shown.ts[0], 0, 6))
    chart(lesson.fig_digit_grid(shown, rows, f"{label}: x_t and x̂_0 at chosen steps"), key="fig_digits")
    ident = identity_numbers(state.seed, dev)
    if isinstance(ident, str):
        st.caption(f"No judge to measure when the digit is chosen: {ident}")
    else:
        st.caption(
            f"When is the digit chosen? On {N_IDENTITY} digits without a label ({IDENTITY_STEPS} DDIM steps, "
            "seed of the sidebar), the independent judge reads x̂_0 as the chain's final digit in "
            + ", ".join(f"**{v:.0%}** at t = {t}" for t, v in ident.items())
            + " (by chance alone: about 10%)."
        )
    explain(lesson.LOOK_DIGITS)
    k = url_int(
        "dstep",
        "kept step (T → 0)",
        0,
        len(shown.ts) - 1,
        0,
        key="rc_dstep",  # clamped if the chain shrank
        help=f"{len(shown.ts)} kept states (stride keeps memory at {shown.nbytes / 1e6:.1f} MB, uint8)",
    )
    chart(lesson.fig_digit_grid(shown, [k], f"{label} at t = {int(round(shown.ts[k]))}"), key="fig_digit_k")


def ddim_against_ddpm(compare: list) -> None:
    """The final digits of each sampler run, side by side, with their model calls and time."""
    for col, (nm, ch) in zip(st.columns(len(compare)), compare):
        chart(
            lesson.fig_digit_grid(ch, [len(ch.ts) - 1], f"{nm}: {ch.steps} model calls, {ch.seconds:.2f} s"),
            key=f"fig_final_{nm}",
            where=col,
        )
    st.caption("Same seeds (same x_T) for both; times measured when first computed, then cached.")
    explain(lesson.LOOK_FINAL)


def digits_downloads(state: FrameState, shown, label: str, compare: list, n_dig: int) -> None:
    c1, c2 = st.columns(2)
    download(
        f"the {label} chain as a GIF",
        partial(digits_gif, shown, label),
        f"reverse_digits_{shown.sampler}.gif",
        key="dl_rc_digits_gif",
        where=c1,
        help=f"{min(len(shown.ts), exports.MAX_FRAMES)} of the {len(shown.ts)} kept "
        "steps; top row x_t, bottom row x̂_0.",
    )
    digits = {f"{nm.lower()}_images": lesson.from_uint8(ch.xs[-1]) for nm, ch in compare}
    download(
        "the digits as .npz",
        partial(exports.npz_bytes, seed=state.seed, **digits),
        "reverse_digits.npz",
        key="dl_rc_digits_npz",
        where=c2,
        help=", ".join(digits) + f": ({n_dig}, 28, 28) in [-1, 1], drawn without a label.",
    )


def digits(state: FrameState) -> None:
    st.header("Digits through the chain")
    explain(lesson.MNIST_TEXT)
    explain(lesson.DDIM_TEXT)
    equation(lesson.EQ_DDIM)
    explain(lesson.DDIM_AFTER)
    digits_box, digits_open = lazy_section(
        "Run it: digits through DDIM and DDPM",
        key="rc_mnist",
        icon=":material/grid_view:",
        params=("ndig", "ddim", "variance", "ddpm", "dstep"),
    )
    if digits_open:  # computed and sent once opened (or when a link sets one of its parameters)
        with digits_box:
            digits_through_the_chain(state)


def page() -> None:
    state = frame()
    intro()
    why_small_steps()
    follow_a_pick()
    T_steps, level, x1, x2 = one_reverse_step(state)
    kl_against_steps(state, T_steps, level, x1, x2)
    step_given_x0(state)
    chains = the_chain(state)
    chain_at_step(state, chains)
    play_both_chains(state, chains)
    samples_as_npz(state, chains)
    chosen_particles(state, chains)
    digits(state)


page()
