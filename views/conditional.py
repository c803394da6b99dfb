"""Lesson page — conditional generation: a label as input, classifier guidance, classifier-free guidance.
Thin: widgets, cached calls into lessons.conditional, render."""

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
    show_source,
    try_checkpoint,
    url_bool,
    url_choice,
    url_float,
    url_int,
)
from lessons import conditional as lesson
from lessons.settings import FrameState, build_schedule
from toy_models.gmm import AnalyticModel
from toy_models.guidance import ClassifierFreeGuidance, ClassifierGuidance
from toy_models.samplers import sample_ddim

N_2D = 300  # points per 2D sample cloud
N_PATHS = 12  # chains drawn
SWEEP_SCALES = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0)  # the scales of the fidelity/diversity sweep
EXACT, LEARNED = "exact (analytic mixture)", "learned (weights/gmm)"


@st.cache_resource
def models_2d(state: FrameState, source: str):
    """(model, classifier, schedule, note) for the 2D mixture: exact, or the shipped learned pair."""
    g = ground_truth_gmm()
    if source == LEARNED:
        ld, err = try_checkpoint("gmm")
        lc, err_c = try_checkpoint("gmm-classifier")
        if ld is not None:
            clf = lc.model if lc is not None else lesson.ExactNoisyClassifier(g, ld.schedule)
            note = (
                f"Learned: recipe `{ld.recipe.get('name')}`, {ld.schedule.describe()}, "
                f"{ld.recipe.get('steps')} training steps; classifier: "
                + (f"recipe `{lc.recipe.get('name')}`" if lc is not None else "exact (gmm-classifier missing)")
            )
            return ld.model, clf, ld.schedule, note, err_c
        return None, None, None, None, err
    s = build_schedule(state)
    return AnalyticModel(g, s), lesson.ExactNoisyClassifier(g, s), s, f"Exact model, {s.describe()}.", None


@st.cache_data(max_entries=64)
def run_2d(state: FrameState, source: str, kind: str, label, scale: float, steps: int):
    """(x0 (N, 2), paths (K, N_PATHS, 2), metrics) of a 2D run; kind: 'label', 'cg', 'cfg'."""
    model, clf, s, _, _ = models_2d(state, source)
    K = ground_truth_gmm().num_components
    if kind == "cfg":
        model = lesson.cfg_model(model, scale, K)
    elif kind == "cg":
        model = lesson.cg_model(model, clf, scale, s)
    tr = lesson.guided_trajectory(model, s, label, N_2D, state.seed, steps, stride=max(1, steps // 25))
    x0 = tr.x0.numpy()
    g = ground_truth_gmm()
    m = None if label is None else lesson.fidelity_diversity_2d(x0, label, g, lesson.ExactNoisyClassifier(g, s))
    return x0, tr.xs[:, :N_PATHS].numpy(), m


@st.cache_data(max_entries=32)
def field_2d(state: FrameState, source: str, t: int, label: int):
    _, clf, _, _, _ = models_2d(state, source)
    return lesson.classifier_field(clf, float(t), label)


@st.cache_data(max_entries=16, show_spinner=False)
def sweep_2d(state: FrameState, source: str, label: int, steps: int):
    model, _, s, _, _ = models_2d(state, source)
    g = ground_truth_gmm()
    bar = st.progress(0.0, text="Sampling at every guidance scale ...")
    out = lesson.cfg_sweep_2d(
        model,
        s,
        g,
        lesson.ExactNoisyClassifier(g, s),
        label,
        SWEEP_SCALES,
        200,
        state.seed,
        steps,
        g.num_components,
        progress=lambda f: bar.progress(f, text="Sampling at every scale ..."),
    )
    bar.empty()
    return out


@st.cache_data(max_entries=32, show_spinner=False)
def mnist_grid(kind: str, digit: int, scale: float, steps: int, seed: int):
    """16 digits: kind 'cfg' (mnist, w) or 'cg' (unconditional mnist + mnist-classifier, gamma)."""
    ld, _ = try_checkpoint("mnist")
    if kind == "cfg":
        model = lesson.cfg_model(ld.model, scale, 10)
    else:
        lc, _ = try_checkpoint("mnist-classifier")
        model = lesson.cg_model(ld.model, lc.model, scale, ld.schedule)
    bar = st.progress(0.0, text=f"Sampling 16 digits with {steps} DDIM steps ...")
    x = lesson.mnist_samples(
        model,
        ld.schedule,
        torch.full((16,), digit),
        seed,
        steps,
        progress=lambda f: bar.progress(min(f, 1.0), text=f"{steps} DDIM steps ..."),
    )
    bar.empty()
    return x.numpy()


@st.cache_data(max_entries=16, show_spinner="Running one chain ...")
def mnist_chain(digit: int, scale: float, seed: int, steps: int = 20):
    """(states (8, 1, 28, 28), times (8,)) of one CFG chain x_T -> x_0 for `digit`."""
    ld, _ = try_checkpoint("mnist")
    tr = lesson.guided_trajectory(
        lesson.cfg_model(ld.model, scale, 10),
        ld.schedule,
        digit,
        1,
        seed,
        steps,
        shape=(1, 28, 28),
        clip_x0=lesson.MNIST_CLIP,
    )
    idx = torch.linspace(0, len(tr.ts) - 1, 8).round().long()
    return tr.xs[idx, 0].numpy(), tr.ts[idx].numpy()


@st.cache_data(max_entries=8, show_spinner=False)
def mnist_sweep(steps: int, seed: int):
    from toy_models.metrics import load_judge

    ld, _ = try_checkpoint("mnist")
    bar = st.progress(0.0, text="Measuring each scale with the judge ...")
    out = lesson.cfg_sweep_mnist(
        ld.model,
        ld.schedule,
        SWEEP_SCALES,
        4,
        seed,
        steps,
        load_judge(),
        progress=lambda f: bar.progress(f, text="Measuring each scale with the judge ..."),
    )
    bar.empty()
    return out


@st.cache_data(max_entries=32)
def moons_run(label, steps: int, seed: int):
    """(x0 (N, 2), paths, measured shares, the labelled data) of the label-conditional two-moons model."""
    from toy_models.data import sample_2d

    lm, _ = try_checkpoint("moons-cond")
    steps = min(steps, lm.schedule.T)
    tr = lesson.guided_trajectory(lm.model, lm.schedule, label, N_2D, seed, steps, stride=max(1, steps // 25))
    data_x, data_y = (a.numpy() for a in sample_2d("moons", 2000, seed=seed + 7))
    x0 = tr.x0.numpy()
    return x0, tr.xs[:, :N_PATHS].numpy(), lesson.nearest_label_share(x0, data_x, data_y, label), data_x, data_y


def metrics_caption(m, what: str):
    if m:
        st.caption(
            f"{what}: the exact Bayes classifier puts **{m['accuracy']:.0%}** of the samples in the class; "
            f"spread = **{m['diversity']:.2f}×** the class's own (1 = right, < 1 = collapsed); "
            f"mean log q(x₀ | y) = {m['log_lik']:.2f} nats."
        )


# --- the page: one function per section --------------------------------------------------------------
def the_settings(state: FrameState):
    """The three controls every 2D section shares: (source, the label picked, the label or None, DDIM steps,
    the 2D model's schedule)."""
    c1, c2, c3 = st.columns(3)
    source = url_choice(
        "model",
        "2D model",
        (EXACT, LEARNED),
        EXACT,
        key="cond_source",
        widget=c1.radio,
        help="The exact eps* of the mixture, or the shipped network trained on it.",
    )
    model, clf, s2, note, err = models_2d(state, source)
    if model is None:
        st.error(f"The learned 2D model is unavailable, so the exact one is used. {err}")
        source = EXACT
        model, clf, s2, note, err = models_2d(state, source)
    elif err:
        st.warning(f"The learned noisy classifier is unavailable; the exact one is used. {err}")
    st.caption(note)
    label_opts = list(range(ground_truth_gmm().num_components)) + ["∅"]
    label_pick = url_choice(
        "y",
        "class y (mixture component)",
        label_opts,
        0,
        key="cond_label",
        widget=c2.selectbox,
        help="∅ is the null label: the same model, unconditional.",
    )
    label = None if label_pick == "∅" else int(label_pick)
    steps = url_int(
        "steps",
        "DDIM steps",
        5,
        200,
        40,
        key="cond_steps",
        widget=c3.slider,
        help="More steps: slower, more faithful to the class's spread.",
    )
    if steps > s2.T:
        st.caption(f"Only T = {s2.T} steps exist: using {s2.T}.")
        steps = s2.T
    return source, label_pick, label, steps, s2


def a_label_as_input(state: FrameState, source: str, label_pick, label, steps: int) -> None:
    st.header("1 · A label as input")
    explain(lesson.NARRATIVE_LABEL)
    equation(lesson.EQ_LABEL)
    x0, paths, m = run_2d(state, source, "label", label, 0.0, steps)
    dens = lesson.class_density(ground_truth_gmm(), label)
    chart(
        lesson.fig_samples_2d(x0, f"Samples for y = {label_pick} (DDIM, {steps} steps)", density=dens, paths=paths),
        key="fig_label",
    )
    st.caption(lesson.LOOK_LABEL)
    metrics_caption(m, f"y = {label_pick}")
    show_source(lesson.guided_trajectory, sample_ddim)


def two_moons(state: FrameState, steps: int) -> None:
    st.subheader("The same network idea on two moons")
    lm, err_m = try_checkpoint("moons-cond")
    if lm is None:
        st.info(f"The label-conditional two-moons model is unavailable. {err_m}")
        return
    explain(
        "One network, trained on two moons with *which moon* as its label input (dropped 15% of the time): "
        "pick a moon, or ∅ for both. There is no exact density here, so the check is the data itself: each "
        "sample counts for the moon of its nearest data point."
    )
    moon_pick = url_choice(
        "moon",
        "moon y",
        [0, 1, "∅"],
        0,
        key="cond_moon",
        widget=st.radio,
        horizontal=True,
        help="0 = the upper moon, 1 = the lower one, ∅ = the null label (both).",
    )
    moon = None if moon_pick == "∅" else int(moon_pick)
    xm, pm, share, data_x, data_y = moons_run(moon, steps, state.seed)
    shown = data_x if moon is None else data_x[data_y == moon]
    chart(
        lesson.fig_samples_2d(
            xm, f"Two moons, y = {moon_pick} (DDIM, {min(steps, lm.schedule.T)} steps)", paths=pm, data=shown
        ),
        key="fig_label_moons",
    )
    st.caption(
        f"{lesson.LOOK_MOONS} Model: recipe `{lm.recipe.get('name')}`, {lm.recipe.get('steps')} training steps. "
        f"Nearest data "
        "point: "
        + ", ".join(f"moon {c}: **{v:.0%}**" for c, v in share["shares"].items())
        + " of the samples"
        + ("" if moon is None else f" (asked for moon {moon})")
        + "."
    )
    show_source(lesson.nearest_label_share)


def classifier_guidance(state: FrameState, source: str, cg_label: int, steps: int, s2) -> float:
    """The classifier's field at t and the samples it guides; returns the scale γ."""
    st.header("2 · Classifier guidance")
    explain(lesson.NARRATIVE_CG)
    equation(lesson.EQ_CG)
    c1, c2 = st.columns(2)
    t_field = url_int(
        "t", "t (noise level of the classifier)", 0, s2.T, min(s2.T, max(1, s2.T // 5)), key="cond_t", widget=c1.slider
    )
    s_scale = url_float("cg_s", "classifier scale γ", 0.0, lesson.CG_MAX, 3.0, 0.5, key="cond_s", widget=c2.slider)
    chart(lesson.fig_classifier_field(field_2d(state, source, t_field, cg_label), cg_label, t_field), key="fig_field")
    st.caption(lesson.LOOK_FIELD)
    x0, paths, m = run_2d(state, source, "cg", cg_label, s_scale, steps)
    chart(
        lesson.fig_samples_2d(
            x0,
            f"Unconditional model guided toward y = {cg_label} with γ = {s_scale:g}",
            density=lesson.class_density(ground_truth_gmm(), cg_label),
            paths=paths,
        ),
        key="fig_cg",
    )
    st.caption(lesson.LOOK_CG)
    metrics_caption(m, f"γ = {s_scale:g}")
    st.caption(
        "γ = 0 is the unconditional model exactly; with the exact model and classifier, γ = 1 gives exactly "
        "the conditional model's ε."
    )
    show_source(ClassifierGuidance, lesson.ExactNoisyClassifier)
    return s_scale


def classifier_free_guidance(state: FrameState, source: str, cg_label: int, steps: int) -> float:
    """The samples at the guidance scale w and the tilted density they aim at; returns w."""
    st.header("3 · Classifier-free guidance")
    explain(lesson.NARRATIVE_CFG)
    equation(lesson.EQ_CFG)
    explain(lesson.CFG_CONVENTION)
    w = url_float("w", "guidance scale w", 0.0, lesson.CFG_MAX, 3.0, 0.1, key="cond_w")
    x0, paths, m = run_2d(state, source, "cfg", cg_label, w, steps)
    g = ground_truth_gmm()
    chart(
        lesson.fig_samples_with_target(
            x0,
            lesson.class_density(g, cg_label),
            lesson.tilted_density(g, cg_label, w),
            f"Classifier-free guidance, y = {cg_label}, w = {w:g}",
        ),
        key="fig_cfg",
    )
    st.caption(lesson.LOOK_CFG)
    metrics_caption(m, f"w = {w:g}")
    return w


def download_2d(state: FrameState, source: str, label, cg_label: int, s_scale: float, w: float, steps: int) -> None:
    """The three 2D clouds above as one .npz."""
    runs = {
        kind: run_2d(state, source, kind, y, scale, steps)[0]  # cached: the three clouds drawn above
        for kind, y, scale in (("label", label, 0.0), ("cg", cg_label, s_scale), ("cfg", cg_label, w))
    }
    download(
        "the 2D samples as .npz",
        partial(
            exports.npz_bytes,
            label_samples=runs["label"],
            label_y=-1 if label is None else label,
            cg_samples=runs["cg"],
            cg_y=cg_label,
            cg_scale=s_scale,
            cfg_samples=runs["cfg"],
            cfg_y=cg_label,
            cfg_w=w,
            ddim_steps=steps,
            model=source,
            seed=state.seed,
        ),
        "conditional_2d.npz",
        key="dl_cond_2d",
        help=f"The three clouds above ({N_2D} points each) with their class y (−1 = ∅) and scales γ (cg_scale) and w.",
    )


def fidelity_vs_diversity(state: FrameState, source: str, cg_label: int, w: float, steps: int, s2) -> None:
    """The share in the class and the spread against the guidance scale w."""
    sw = sweep_2d(state, source, cg_label, min(steps, 40, s2.T))
    chart(lesson.fig_sweep(sw, w, "share in the class (exact classifier)", "spread / class spread"), key="fig_sweep")
    st.caption(
        f"{lesson.LOOK_SWEEP} 200 samples per scale, the same seeds for every scale. From w = 0 to w = 10 the share "
        f"in class "
        f"{cg_label} goes {sw['accuracy'][0]:.0%} → {sw['accuracy'][-1]:.0%} and the spread "
        f"{sw['diversity'][0]:.2f} → {sw['diversity'][-1]:.2f}× the class's own."
    )
    show_source(ClassifierFreeGuidance, lesson.cfg_sweep_2d, lesson.fidelity_diversity_2d)
    explain(lesson.TRY_THIS)


def mnist_digits(state: FrameState) -> None:
    st.header("4 · MNIST digits")
    ld, err = try_checkpoint("mnist")
    if ld is None:
        st.info(f"The MNIST model is not available yet, so this section is off. {err}")
        return
    st.caption(
        f"Model: recipe `{ld.recipe.get('name')}`, {ld.schedule.describe()}, "
        f"{ld.recipe.get('steps')} training steps. DDIM with x̂₀ clipped to [−1, 1]."
    )
    c1, c2, c3 = st.columns(3)
    digit = url_choice("digit", "digit", range(10), 3, key="cond_digit", widget=c1.selectbox)
    wm = url_float(
        "w_mnist", "guidance scale w (MNIST)", 0.0, lesson.CFG_MAX, 2.0, 0.5, key="cond_w_mnist", widget=c2.slider
    )
    full = url_bool("full", f"full chain ({ld.schedule.T} steps, slow)", key="cond_full", widget=c3.checkbox)
    m_steps = ld.schedule.T if full else 20
    imgs = mnist_grid("cfg", digit, wm, m_steps, state.seed)
    chart(lesson.fig_digit_grid(imgs, f"16 samples of digit {digit}, w = {wm:g}"), key="fig_mnist_cfg")
    st.caption(lesson.LOOK_MNIST)
    one_digit_chain(state, digit, wm)
    the_judge(imgs, digit)
    sm = mnist_classifier_guidance(state, digit, m_steps)
    download_digits(state, digit, imgs, wm, sm, m_steps)
    mnist_sweep_section(state, wm)


def one_digit_chain(state: FrameState, digit: int, wm: float) -> None:
    chain, chain_ts = mnist_chain(digit, wm, state.seed)
    chart(
        lesson.fig_digit_grid(
            chain, "One chain x_T → x₀ at t = " + ", ".join(f"{t:.0f}" for t in chain_ts), cols=8, height=200
        ),
        key="fig_mnist_chain",
    )
    st.caption(
        f"{lesson.LOOK_CHAIN} w = 0 is the same network given the null label ∅: unconditional digits; w = 1 is the "
        f"plain "
        "label-conditional model."
    )
    titles = [f"digit {digit}, w = {wm:g}: t = {t:.0f}" for t in chain_ts]
    download(
        "this chain as a GIF",
        partial(exports.gif_from_images, chain[:, 0], titles, scale=8),
        f"conditional_chain_{digit}_w{wm:g}.gif",
        key="dl_cond_chain",
    )


def the_judge(imgs, digit: int) -> None:
    try:
        from toy_models.metrics import JudgeError, judge_accuracy

        st.caption(f"The independent judge reads **{judge_accuracy(imgs, [digit] * 16):.0%}** of these as a {digit}.")
    except (ImportError, JudgeError) as e:
        st.caption(f"No judge: {e}")


def mnist_classifier_guidance(state: FrameState, digit: int, m_steps: int) -> float | None:
    """The unconditional model guided by the noisy MNIST classifier; returns γ (None without the classifier)."""
    lc, err_c = try_checkpoint("mnist-classifier")
    if lc is None:
        st.info(f"Classifier guidance on MNIST needs weights/mnist-classifier. {err_c}")
        return None
    sm = url_float("cg_s_mnist", "classifier scale γ (MNIST)", 0.0, lesson.CG_MAX, 5.0, 0.5, key="cond_s_mnist")
    chart(
        lesson.fig_digit_grid(
            mnist_grid("cg", digit, sm, m_steps, state.seed),
            f"Unconditional model + noisy classifier toward {digit}, γ = {sm:g}",
        ),
        key="fig_mnist_cg",
    )
    st.caption(lesson.LOOK_MNIST_CG)
    return sm


def download_digits(state: FrameState, digit: int, imgs, wm: float, sm: float | None, m_steps: int) -> None:
    digits = dict(cfg_images=imgs[:, 0], cfg_w=wm)
    if sm is not None:
        digits.update(cg_images=mnist_grid("cg", digit, sm, m_steps, state.seed)[:, 0], cg_scale=sm)
    download(
        "the digits as .npz",
        partial(exports.npz_bytes, labels=np.full(len(imgs), digit), ddim_steps=m_steps, seed=state.seed, **digits),
        f"conditional_digits_{digit}.npz",
        key="dl_cond_digits",
        help=", ".join(k for k in digits if k.endswith("images")) + " (16, 28, 28) in [-1, 1], their label "
        "and the guidance scales.",
    )


def mnist_sweep_section(state: FrameState, wm: float) -> None:
    if url_bool(
        "sweep", "Measure fidelity and diversity against w (8 scales × 40 digits, about a minute)", key="cond_sweep"
    ):
        swm = mnist_sweep(20, state.seed)
        chart(lesson.fig_sweep(swm, wm, "judge accuracy", "feature diversity"), key="fig_mnist_sweep")
        st.caption(
            f"{lesson.LOOK_MNIST_SWEEP} Judge accuracy {swm['accuracy'][0]:.0%} at w = 0 → {swm['accuracy'][-1]:.0%} "
            f"at w = 10; "
            f"diversity {swm['diversity'][0]:.2f} → {swm['diversity'][-1]:.2f}."
        )


def page() -> None:
    state = frame()
    st.title("6 · Conditional generation and guidance")
    explain(lesson.INTRO)
    source, label_pick, label, steps, s2 = the_settings(state)
    a_label_as_input(state, source, label_pick, label, steps)
    two_moons(state, steps)
    cg_label = 0 if label is None else label
    s_scale = classifier_guidance(state, source, cg_label, steps, s2)
    w = classifier_free_guidance(state, source, cg_label, steps)
    download_2d(state, source, label, cg_label, s_scale, w, steps)
    fidelity_vs_diversity(state, source, cg_label, w, steps, s2)
    mnist_digits(state)


page()
