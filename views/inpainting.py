"""Lesson page — inpainting: the replacement method with a standard model vs a model fine-tuned on masks.
Thin: widgets, cached calls into lessons.inpainting, render."""

from functools import partial

import numpy as np
import streamlit as st
import torch

from course import (
    chart,
    download,
    equation,
    explain,
    exports,
    frame,
    ground_truth_gmm,
    mnist,
    points_2d,
    show_source,
    try_checkpoint,
    url_choice,
    url_float,
    url_int,
)
from lessons import inpainting as lesson
from lessons.settings import FrameState, build_schedule
from toy_models.gmm import AnalyticModel
from toy_models.inpainting import gmm_condition_on, renoise, replace_known, sample_replacement

N_2D = 400  # points in the 2D analogue
N_DIGITS = 8  # inpainted samples per method


@st.cache_data(max_entries=32, show_spinner="Inpainting the 2D points ...")
def run_2d(state: FrameState, value: float, steps: int, resample: int):
    g = ground_truth_gmm()
    s = build_schedule(state)
    tr = lesson.inpaint_2d(AnalyticModel(g, s), s, value, N_2D, state.seed, steps, resample)
    x0 = tr.x0.numpy()
    grid, dens = lesson.exact_conditional_1d(g, value)
    ex, _ = gmm_condition_on(g, 0, value).sample(N_2D, generator=torch.Generator().manual_seed(state.seed))
    w1_rep = lesson.wasserstein_to_exact(x0[:, 1], g, value, seed=state.seed + 7)
    w1_floor = lesson.wasserstein_to_exact(ex[:, 0].numpy(), g, value, seed=state.seed + 7)
    return x0, grid, dens, ex[:, 0].numpy(), w1_rep, w1_floor


@st.cache_data(max_entries=16, show_spinner=False)
def run_mnist(method: str, digit: int, which: int, mask_key: tuple, steps: int, resample: int, seed: int):
    """(states (K, N, 1, 28, 28), ts, x0 samples, metrics) for one method."""
    from toy_models.data import mnist_digit
    from toy_models.metrics import JudgeError, load_judge

    x0 = mnist_digit(mnist(), digit, which)  # (1, 1, 28, 28)
    mask = torch.tensor(np.asarray(mask_key, dtype=np.float32)).reshape(1, 1, 28, 28)
    bar = st.progress(0.0, text=f"{method}: {steps} steps ...")
    prog = lambda f: bar.progress(f, text=f"{method}: {steps} steps ...")  # noqa: E731
    if method == "replacement":
        ld, _ = try_checkpoint("mnist")
        tr = lesson.inpaint_replacement(ld.model, ld.schedule, x0, mask, N_DIGITS, seed, steps, resample, progress=prog)
    else:
        ld, _ = try_checkpoint("mnist-inpaint")
        tr = lesson.inpaint_finetuned(ld.model, ld.schedule, x0, mask, N_DIGITS, seed, steps, progress=prog)
    bar.empty()
    out = tr.x0
    m = dict(known_rmse=lesson.known_region_error(out, x0, mask), seam=lesson.seam_error(out, mask))
    try:
        m.update(lesson.validity(out, digit, load_judge()))
    except JudgeError as e:
        m["judge_error"] = str(e)
    return tr.xs.numpy(), tr.ts.numpy(), out.numpy(), m


# --- the page: one function per section --------------------------------------------------------------
def story() -> None:
    st.title("7 · Inpainting")
    explain(lesson.INTRO)
    explain(lesson.NARRATIVE)
    equation(lesson.EQ_REPLACE)
    equation(lesson.EQ_SIGMA)
    explain(lesson.RESAMPLE_TEXT)
    equation(lesson.EQ_RESAMPLE)
    explain(lesson.FINETUNED_TEXT)
    show_source(sample_replacement, replace_known, renoise)


def the_2d_analogue(state: FrameState) -> None:
    """Know x₁ of a 2D point, sample x₂ by replacement, against the exact conditional."""
    st.header("The 2D analogue: know x₁, sample x₂")
    explain(lesson.IDEA_2D)
    s = build_schedule(state)
    c1, c2, c3 = st.columns(3)
    value = url_float("x1", "known x₁", -2.5, 2.5, 0.5, 0.05, key="inp_value", widget=c1.slider)
    steps_2d = url_int("steps_2d", "sampler steps", 10, 200, 50, key="inp_steps_2d", widget=c2.slider, step=10)
    resample_2d = url_int(
        "r_2d",
        "resampling r (RePaint)",
        1,
        10,
        1,
        key="inp_resample_2d",
        widget=c3.slider,
        help="Each step is done r times, noising back in between.",
    )
    if steps_2d > s.T:
        st.caption(f"Only T = {s.T} steps exist: using {s.T}.")
        steps_2d = s.T
    x0, grid, dens, ex, w1_rep, w1_floor = run_2d(state, value, steps_2d, resample_2d)
    chart(lesson.fig_2d(x0, value, grid, dens, ex, data=points_2d("gmm", 1000, state.seed).numpy()), key="fig_2d")
    st.caption(
        f"{lesson.LOOK_2D} Wasserstein-1 distance of the replacement samples' x₂ to the exact conditional: "
        f"**{w1_rep:.3f}** "
        f"(an exact sample of the same size scores {w1_floor:.3f}: the sampling-noise floor). The known x₁ is "
        f"kept exactly: max |x₁ − {value:g}| = {np.abs(x0[:, 0] - value).max():.2g}."
    )
    download(
        "the 2D samples as .npz",
        partial(
            exports.npz_bytes,
            samples=x0,
            known_x1=value,
            exact_x2=ex,
            steps=steps_2d,
            resample=resample_2d,
            w1_to_exact=w1_rep,
            seed=state.seed,
        ),
        "inpainting_2d.npz",
        key="dl_inp_2d",
        help=f"samples ({N_2D}, 2): x₁ known, x₂ inpainted; exact_x2: draws of the exact conditional.",
    )
    show_source(lesson.inpaint_2d, gmm_condition_on)


def digits(state: FrameState) -> None:
    """A digit, a mask, and the two methods side by side."""
    st.header("Digits")
    ld, err = try_checkpoint("mnist")
    li, err_i = try_checkpoint("mnist-inpaint")
    if ld is None and li is None:
        st.info(f"The MNIST models are not available yet, so this section is off. {err}")
        return
    from toy_models.data import mnist_digit

    digit, which, mask = digit_and_mask(state)
    x_true = mnist_digit(mnist(), digit, int(which))
    c1, c2, c3 = st.columns(3)
    steps_m = url_int("steps", "DDIM steps", 5, 100, 25, key="inp_steps", widget=c1.slider, step=5)
    resample_m = url_int("r", "resampling r (replacement only)", 1, 10, 1, key="inp_resample", widget=c2.slider)
    c3.metric("known pixels", f"{int(mask.sum())} / 784")
    chart(
        lesson.fig_images(
            [x_true[0, 0].numpy(), mask[0, 0].numpy() * 2 - 1, lesson.masked_view(x_true, mask)],
            ["the digit", "mask (white = known)", "what the model gets"],
        ),
        key="fig_mask",
    )
    st.caption(lesson.LOOK_MASK)
    key = tuple(mask.flatten().tolist())
    cols = st.columns(2)
    for col, (method, ok, e) in zip(
        cols, (("replacement", ld is not None, err), ("fine-tuned", li is not None, err_i))
    ):
        with col:
            st.subheader(
                "(a) replacement, standard model" if method == "replacement" else "(b) fine-tuned inpainting model"
            )
            if not ok:
                st.info(f"Unavailable: {e}")
                continue
            result = run_mnist(method, digit, int(which), key, steps_m, resample_m, state.seed)
            inpainted_samples(method, digit, result)
            method_downloads(state, method, digit, int(which), x_true, mask, steps_m, resample_m, result)
    show_source(lesson.inpaint_replacement, lesson.inpaint_finetuned, lesson.known_region_error, lesson.seam_error)


def digit_and_mask(state: FrameState):
    """The digit (its label and which one of its class) and the mask: a preset or blocks ticked by hand."""
    digits = mnist()
    c1, c2, c3 = st.columns(3)
    digit = url_choice("digit", "digit", range(10), 3, key="inp_digit", widget=c1.selectbox)
    n_class = int((digits.y_test == digit).sum())
    which = url_int(
        "which", f"which {digit} (of {n_class})", 0, max(0, n_class - 1), 0, key="inp_which", widget=c2.number_input
    )
    preset = url_choice(
        "mask", "mask", lesson.MASK_PRESETS, lesson.MASK_PRESETS[0], key="inp_mask", widget=c3.selectbox
    )
    blocks = None
    if preset == "custom":
        st.caption("Tick the 4×4-pixel blocks that are KNOWN (7×7 board).")
        table = st.data_editor(
            {f"c{j}": [j < 3] * lesson.GRID for j in range(lesson.GRID)}, key="inp_blocks", hide_index=True
        )
        blocks = np.array(
            [[bool(table[f"c{j}"][i]) for j in range(lesson.GRID)] for i in range(lesson.GRID)], dtype=float
        )
    return digit, which, lesson.preset_mask(preset, state.seed, blocks=blocks)


def inpainted_samples(method: str, digit: int, result) -> None:
    """One method's samples, its chain at a chosen step, and its scores."""
    xs, ts, out, m = result
    chart(lesson.fig_images(list(out[:4, 0]), [f"sample {k}" for k in range(4)]), key=f"fig_{method}")
    st.caption(lesson.LOOK_SAMPLES)
    step = url_int(f"step_{method}", "step of the chain", 0, len(ts) - 1, len(ts) - 1, key=f"inp_step_{method}")
    chart(
        lesson.fig_images([xs[step, k, 0] for k in range(4)], [f"t = {ts[step]:.0f}"] * 4),
        key=f"fig_{method}_step",
    )
    st.caption(lesson.LOOK_STEP[method])
    txt = f"Known-pixel RMS error **{m['known_rmse']:.3f}**, seam score {m['seam']:.3f}"
    if "accuracy" in m:
        txt += f"; the judge reads **{m['accuracy']:.0%}** as a {digit} (mean confidence {m['confidence']:.0%})."
    st.caption(txt)


def method_downloads(
    state: FrameState, method: str, digit: int, which: int, x_true, mask, steps_m: int, resample_m: int, result
) -> None:
    """One method's chain as a GIF and its results as .npz."""
    xs, ts, out, m = result
    titles = [f"{method}: t = {t:.0f}" for t in ts]
    download(
        "the chain as a GIF",
        partial(exports.gif_from_images, xs[:, :, 0], titles, cols=4, scale=3),
        f"inpainting_{method}_{digit}.gif",
        key=f"dl_inp_gif_{method}",
        help=f"All {xs.shape[1]} samples, {min(len(ts), exports.MAX_FRAMES)} of {len(ts)} steps.",
    )
    download(
        "the results as .npz",
        partial(
            exports.npz_bytes,
            samples=out[:, 0],
            original=x_true[0, 0].numpy(),
            mask=mask[0, 0].numpy(),
            label=digit,
            which=which,
            method=method,
            ddim_steps=steps_m,
            resample=resample_m if method == "replacement" else 1,
            seed=state.seed,
            known_rmse=m["known_rmse"],
            seam=m["seam"],
        ),
        f"inpainting_{method}_{digit}.npz",
        key=f"dl_inp_npz_{method}",
        help=f"samples ({len(out)}, 28, 28) in [-1, 1], the original digit, the mask (1 = known).",
    )


def page() -> None:
    state = frame()
    story()
    the_2d_analogue(state)
    digits(state)
    explain(lesson.TRY_THIS)


page()
