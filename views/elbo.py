"""Lesson 4 page — the bound (ELBO). Thin: widgets, cached calls into lessons.elbo_lesson, render."""

import numpy as np
import streamlit as st
import torch

from course import (
    chart,
    equation,
    explain,
    frame,
    ground_truth_gmm,
    lazy_section,
    mnist,
    model_for,  # "use my model": the sidebar's choice of a model trained in the training lab
    points_2d,
    show_source,
    try_checkpoint,
    url_bool,
    url_choice,
    url_int,
)
from lessons import elbo_lesson as lesson
from lessons.settings import FrameState, build_schedule
from toy_models.diffusion import predict_eps_from_x0, predict_x0_from_eps, predict_x0_from_mean
from toy_models.elbo import prior_kl, vb_term, vb_weights
from toy_models.guidance import null_labels

N_POINTS = 1000  # points for the exact model's bound (every step: first view stays quick)
N_LEARNED = 500  # points for a learned 2D model's bound (a network is ~100x slower per point than the exact model)
N_CURVE = 200  # points per T in the bound-vs-T curve
N_EST = 2000  # estimates per estimator
N_ODE = 200  # points for the probability-flow ODE NLL
CURVE_TS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # T values of the bound-vs-T curve
COMPARED = ("moons", "moons-hybrid", "moons-vlb")  # recipes compared in section 5 (L_simple, hybrid, L_vlb)
VAR_LABELS = {"beta_tilde": "β̃_t (posterior variance)", "beta": "β_t"}
FUNCS = {
    "bound_terms": lesson.bound_terms,
    "prior_kl": prior_kl,
    "vb_term": vb_term,
    "estimator_pair": lesson.estimator_pair,
}


# --- cached loaders and computations ---------------------------------------------------------------
def gmm_points(n: int, seed: int) -> torch.Tensor:
    return ground_truth_gmm().sample(n, generator=torch.Generator().manual_seed(seed))[0]


@st.cache_data(max_entries=16, show_spinner="Computing every term of the bound (exact model) ...")
def exact_report(state: FrameState, variance: str):
    from toy_models.gmm import AnalyticModel

    s, gmm = build_schedule(state), ground_truth_gmm()
    x0 = gmm_points(N_POINTS, state.seed)
    report = lesson.bound_terms(s, AnalyticModel(gmm, s), x0, variance=variance, seed=state.seed)
    return report, float(-gmm.log_prob(x0).mean())


@st.cache_data(max_entries=8, show_spinner="Solving the probability-flow ODE for 200 points ...")
def exact_ode_nll(state: FrameState) -> float:
    s, gmm = build_schedule(state), ground_truth_gmm()
    x0 = gmm_points(N_ODE, state.seed)
    return float(np.mean(lesson.ode_nll(lesson.AnalyticModel(gmm, s), s, x0) - (-gmm.log_prob(x0).numpy()))), float(
        -gmm.log_prob(x0).mean()
    )


@st.cache_data(max_entries=8, show_spinner="The bound for T = 1 ... 1000, both reverse variances ...")
def curves(state: FrameState):
    return {
        VAR_LABELS[v]: lesson.bound_vs_T(
            ground_truth_gmm(), build_schedule(state), CURVE_TS, gmm_points(N_CURVE, state.seed), v, state.seed
        )
        for v in lesson.VARIANCE_CHOICES
    }


@st.cache_data(max_entries=8, show_spinner="Computing every term of the bound (learned model) ...")
def learned_report(name: str, data: str, variance: str, seed: int, stride: int):
    ck, _ = try_checkpoint(name)
    x0 = points_2d(data, N_LEARNED, seed).float()
    y = null_labels(ck.model, x0.shape[0])
    return lesson.bound_terms(ck.schedule, ck.model, x0, y=y, variance=variance, seed=seed, stride=stride)


@st.cache_data(max_entries=8, show_spinner="Estimating the bound many times, both ways ...")
def estimators(state: FrameState, variance: str, index: int, t_fixed: int):
    from toy_models.gmm import AnalyticModel

    s = build_schedule(state)
    x0 = gmm_points(N_POINTS, state.seed)[index]
    return lesson.compare_estimators(
        s, AnalyticModel(ground_truth_gmm(), s), x0, N_EST, variance, state.seed, t_fixed or None
    )


@st.cache_data(max_entries=8)
def roundtrip(state: FrameState, t: int):
    from toy_models.gmm import AnalyticModel

    s = build_schedule(state)
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(state.seed), dtype=torch.float64)
    return lesson.parameterization_roundtrip(s, AnalyticModel(ground_truth_gmm(), s), x_t, t)


@st.cache_data(max_entries=8, show_spinner="Sampling, per-t loss and bound of a shipped model ...")
def shipped_comparison(name: str, variance: str, seed: int):
    ck, _ = try_checkpoint(name)
    return lesson.model_summary(ck.model, ck.schedule, "moons", variance, seed)


# --- the page: one function per section --------------------------------------------------------------
def a_vae_with_T_layers() -> None:
    st.header("1 · A VAE with T latent layers")
    explain(lesson.VAE_TEXT)
    chart(lesson.fig_vae_diagram(), key="fig_vae")
    explain(lesson.VAE_LOOK)
    for latex, caption, fn in lesson.BOUND_LINES:
        equation(latex)  # full width: a display equation in a column was cut at its right edge
        st.caption(caption)
        if fn:
            show_source(FUNCS[fn], label=f"the code of this line: {fn}")


def the_bound_term_by_term(state: FrameState) -> str:
    """The bound of the exact model, live with the sidebar; σ_t² and MNIST in the advanced box below it.
    Returns σ_t² (the advanced box's radio), which the later sections use too."""
    st.header("2 · The bound, term by term")
    section2 = st.container()  # drawn after the advanced box below, whose radio sets sigma_t^2
    advanced, advanced_open = lazy_section(
        "Advanced: the reverse variance σ_t², and the bound of an MNIST model",
        key="elbo_advanced",
        icon=":material/tune:",
        params=("variance", "mnist_n", "mnist_stride"),
    )
    with advanced:
        variance = reverse_variance()
    with section2:
        report, nll = exact_bound(state, variance)
        reports = {"exact model": report}
        ck, model = learned_bound(state, variance, reports)
        the_terms(state, report, reports)
        ode_likelihood(state, ck, model, report, nll)
    with advanced:
        mnist_bound(state, variance, advanced_open)
    return variance


def reverse_variance() -> str:
    explain(lesson.VARIANCE_TEXT)
    return url_choice(
        "variance",
        "reverse variance σ_t² of p_θ",
        lesson.VARIANCE_CHOICES,
        lesson.VARIANCE_CHOICES[0],
        key="elbo_variance",
        widget=st.radio,
        format_func=VAR_LABELS.get,
        horizontal=True,
    )


def exact_bound(state: FrameState, variance: str):
    """The exact model's bound beside the true NLL; returns (its report, the true NLL)."""
    report, nll = exact_report(state, variance)
    explain(
        f"The exact model of the Gaussian mixture (ε* from the mixture's score), {N_POINTS:,} data points, "
        f"schedule **{build_schedule(state).describe()}**, σ_t² = {VAR_LABELS[variance]} (the advanced section "
        "below changes it)."
    )
    c = st.columns(4)
    c[0].metric("bound L", f"{report.total:.3f} nats", help="L_T + Σ L_(t−1) + L_0, mean over the points")
    c[1].metric("bits/dim", f"{report.bits_per_dim(report.total):.3f}", help="nats / (D ln 2), D = 2")
    c[2].metric("true NLL −log q(x₀)", f"{nll:.3f} nats")
    c[3].metric("gap L − NLL", f"{report.total - nll:.3f} nats", help="≥ 0 on average: the bound is an upper bound")
    return report, nll


def learned_bound(state: FrameState, variance: str, reports: dict):
    """The learned 2D model's bound, added to `reports` when asked; returns (its checkpoint or None, its name)."""
    data = state.data if state.is_2d else "moons"
    model = model_for(data)  # the shipped model, or the user's own trained on the same data
    ck, msg = try_checkpoint(model)
    if ck is None:
        st.info(f"No learned 2D model for '{data}' here, so only the exact model is shown. {msg}")
        return ck, model
    c1, c2 = st.columns([2, 1])
    stride_l = url_choice(
        "learned_stride",
        f"learned model '{data}': evaluate every k-th t (1 = the exact sum, slow on a CPU)",
        [1, 2, 5, 10, 20],
        10,
        key="elbo_learned_stride",
        widget=c1.select_slider,
    )
    if url_bool("learned", "Add the learned model", key="elbo_learned_go", widget=c2.toggle):
        rl = learned_report(model, data, variance, state.seed, stride_l)
        reports[f"learned '{data}'"] = rl
        st.caption(
            f"Learned model '{data}': recipe {ck.recipe.get('name')} ({ck.recipe.get('objective')}), "
            f"schedule {ck.schedule.describe()}, {ck.recipe.get('steps')} training steps; on {N_LEARNED} "
            f"{data} points its bound is {rl.total:.3f} nats = {rl.bits_per_dim(rl.total):.3f} bits/dim "
            f"(its own schedule, not the sidebar's; every {stride_l}-th t)."
        )
    return ck, model


def the_terms(state: FrameState, report, reports: dict) -> None:
    """Every term of the bound: the figure, the table and where the KL sum sits."""
    chart(lesson.fig_terms(reports), key="fig_terms")
    explain(lesson.TERMS_LOOK)
    g = report.groups()
    rows = [{"term": k, "nats": v, "bits/dim": report.bits_per_dim(v)} for k, v in g.items()]
    rows.append(
        {
            "term": "total L (the sum of the rows above)",
            "nats": sum(g.values()),
            "bits/dim": report.bits_per_dim(sum(g.values())),
        }
    )
    st.dataframe(rows, hide_index=True)
    explain(lesson.TABLE_LOOK)
    explain(
        f"Half of the KL sum sits at **t ≤ {report.dominant_steps()}** of T = {build_schedule(state).T}: the last "
        f"few denoising steps dominate. L_0 = {report.l0:.3f} nats is a *density* of continuous points, so it can "
        f"be negative; L_T = {report.prior:.2e} nats says how far x_T is from pure noise."
    )
    show_source(lesson.bound_terms, vb_term)


def ode_likelihood(state: FrameState, ck, model: str, report, nll: float) -> None:
    with st.expander(
        "The probability-flow ODE likelihood: a different model (slower: 200 points)", icon=":material/timeline:"
    ):
        if url_bool("ode", "Solve the ODE", key="elbo_ode"):
            gap_ode, nll_ode = exact_ode_nll(state)
            learned = None
            if ck is not None and "ode_nll_bits_per_dim" in ck.sidecar.get("metrics", {}):
                m = ck.sidecar["metrics"]
                learned = (model, m["elbo_bits_per_dim"], m["ode_nll_bits_per_dim"])
            explain(lesson.ode_vs_bound_text(gap_ode, report.total - nll, N_ODE, N_POINTS, learned))
            show_source(lesson.ode_nll, lesson.AnalyticModel)


def mnist_bound(state: FrameState, variance: str, advanced_open: bool) -> None:
    """The shipped digit model's bound, computed on a click (inside the advanced box)."""
    st.subheader("MNIST: the bound of the shipped digit model")
    ckm, msgm = try_checkpoint("mnist") if advanced_open else (None, "")  # closed: nothing to compute
    if not advanced_open:
        return
    if ckm is None:
        st.info(f"The MNIST model is not available, so its bound cannot be computed here. {msgm}")
        return
    c1, c2 = st.columns(2)
    n_dig = url_choice("mnist_n", "held-out digits", [8, 16, 32, 64], 64, key="elbo_mnist_n", widget=c1.select_slider)
    stride = url_choice(
        "mnist_stride",
        f"above t = {lesson.EXACT_HEAD}, evaluate every k-th t (1 = every step, exact sum)",
        [1, 2, 5, 10, 20],
        20,
        key="elbo_mnist_stride",
        widget=c2.select_slider,
    )
    key = ("mnist", n_dig, stride, variance, state.seed)
    done = st.session_state.setdefault("elbo_mnist_done", {})
    if st.button("Compute the MNIST bound", key="elbo_mnist_go") and key not in done:
        bar = st.progress(0.0, text="MNIST bound: every term ...")
        x0 = mnist().held_out(n_dig)[0]  # the classes in turn (the split is sorted by class)
        y = null_labels(ckm.model, n_dig)
        done[key] = lesson.bound_terms(
            ckm.schedule,
            ckm.model,
            x0,
            y=y,
            variance=variance,
            data_kind="image8bit",
            seed=state.seed,
            stride=stride,
            chunk_elements=200_000,
            progress=lambda d, n: bar.progress(d / n, text=f"t-batches {d}/{n}"),
        )
        bar.empty()
    if key in done:
        mnist_terms(ckm, done[key], n_dig, stride, variance)


def mnist_terms(ckm, rm, n_dig: int, stride: int, variance: str) -> None:
    chart(lesson.fig_terms({"MNIST model": rm}), key="fig_terms_mnist")
    explain(
        f"Look at the diamond at t = 1: for digits L_0 is the probability of 8-bit pixel values, so it "
        f"is positive, and here it is {rm.l0 / rm.total:.0%} of the bound."
    )
    strided = (
        ""
        if stride == 1
        else f"; every t up to {lesson.EXACT_HEAD}, then every {stride}-th t, each standing for {stride} steps"
    )
    explain(
        f"Bound on {n_dig} held-out digits: **{rm.total:.1f} nats = {rm.bits_per_dim(rm.total):.3f} "
        f"bits/dim** (L_T {rm.prior:.3g}, KL terms {rm.kl_sum:.1f}, L_0 {rm.l0:.1f} nats; discretized "
        f"8-bit likelihood at t = 1{strided})."
    )
    explain(lesson.mnist_limits(ckm, mnist().held_out(n_dig)[0], rm, variance, n_train=len(mnist().x_train)))
    show_source(lesson.l0_floor, lesson.KnowsX0)


def schedules_move_the_bound(state: FrameState) -> None:
    st.header("3 · Schedules move the bound")
    explain(
        "Every number above follows the sidebar's schedule and T. Below, the same diffusion (the sidebar "
        "schedule's ᾱ curve) cut into T = 1 … 1000 steps: the bound tightens toward the true NLL."
    )
    cvs = curves(state)
    chart(lesson.fig_bound_vs_T(cvs, build_schedule(state).T), key="fig_curve")
    explain("Look at the distance from each curve to the dashed line (the true NLL) as T grows.")
    st.caption(
        " ".join(
            f"σ_t² = {k}: gap {cv.gap[0]:.3f} nats at T = {int(cv.Ts[0])}, {cv.gap[-1]:.3f} ± "
            f"{2 * cv.stderr[-1]:.3f} at T = {int(cv.Ts[-1])}."
            for k, cv in cvs.items()
        )
        + f" ({N_CURVE} points, each paired with its true NLL.) "
        + lesson.curve_verdict(cvs)
    )
    show_source(lesson.same_process)


def why_rearrange(state: FrameState, variance: str) -> None:
    st.header("4 · Why rearrange")
    explain(lesson.REARRANGE_TEXT)
    c1, c2 = st.columns(2)
    idx = url_int("point", "which data point x₀", 0, N_POINTS - 1, 0, key="elbo_point", widget=c1.slider)
    t_fixed = url_int(
        "t_est",
        "t of every estimate (0 = random t, as in training)",
        0,
        build_schedule(state).T,
        0,
        key="elbo_t_est",
        widget=c2.slider,
    )
    cmp = estimators(state, variance, idx, t_fixed)
    chart(lesson.fig_estimators(cmp, t_fixed=t_fixed or None), key="fig_est")
    explain(lesson.ESTIMATORS_LOOK)
    c = st.columns(3)
    c[0].metric("std, naive (sampled log-ratios)", f"{cmp.std_naive:.4g} nats")
    c[1].metric("std, rearranged (analytic KLs)", f"{cmp.std_rearranged:.4g} nats")
    c[2].metric("ratio naive / rearranged", f"{cmp.ratio:.3g}×")
    st.caption(
        f"Means: naive {cmp.naive.mean():.3f}, rearranged {cmp.rearranged.mean():.3f} nats "
        f"(difference {cmp.mean_difference_z:+.2f} standard errors): the same expectation. With a random t most of "
        "the spread comes from which t was drawn; fix t to see the per-step noise that the closed-form KL removes."
    )
    show_source(lesson.estimator_pair)


def simple_vs_vlb(state: FrameState, variance: str) -> None:
    """The weights λ_t that turn L_simple's terms into the bound's."""
    s = build_schedule(state)
    st.header("5 · L_simple vs L_vlb")
    explain(lesson.SIMPLE_TEXT)
    equation(lesson.EQ_SIMPLE)
    tw, lam = lesson.simple_weights(s, variance)
    if len(tw):
        chart(lesson.fig_weights(tw, lam), key="fig_weights")
        explain(lesson.weights_look(tw, lam))
        st.caption(f"λ_t is {lam[0]:.3g} at t = 2 and {lam[-1]:.3g} at t = T = {s.T}.")
    else:
        st.info("With T = 1 there is no KL term: the bound is L_T + L_0.")
    show_source(vb_weights)


def three_models_of_two_moons(state: FrameState, variance: str) -> None:
    st.subheader("Three models of two moons: L_simple, hybrid, L_vlb")
    explain(lesson.recipe_hybrid_text("moons-hybrid"))
    summaries = the_three_models(state, variance)
    if summaries:
        compare_the_models(state, variance, summaries)


def the_three_models(state: FrameState, variance: str) -> dict:
    """{name: summary} of the shipped models compared, and of the missing ones once trained here."""
    summaries, missing = {}, []
    for name in COMPARED:
        ckc, m = try_checkpoint(name)
        if ckc is None:
            missing.append((name, m))
        else:
            summaries[f"{name} ({lesson.net_summary(ckc.recipe)})"] = shipped_comparison(  # the name says the objective
                name, variance, state.seed
            )
    trained = st.session_state.setdefault("elbo_trained", {})
    if not missing:
        return summaries
    st.info("Not shipped here: " + "; ".join(f"**{n}** — {m}" for n, m in missing))
    steps = url_choice(
        "train_steps",
        "training steps per model (train here, on this machine)",
        [100, 300, 1000, 3000],
        300,
        key="elbo_train_steps",
        widget=st.select_slider,
    )
    if st.button("Train the missing models here", key="elbo_train"):
        for name, _ in missing:
            bar = st.progress(0.0, text=f"training {name} ...")
            trained[(name, steps)] = lesson.train_and_summarise(
                name,
                steps,
                variance,
                state.seed,
                progress=lambda d, n, name=name: bar.progress(d / n, text=f"{name}: step {d}/{n}"),
            )
            bar.empty()
    for (name, n_steps), summ in trained.items():
        if name in dict(missing):
            summaries[f"{name} (trained here, {n_steps} steps)"] = summ
    return summaries


def compare_the_models(state: FrameState, variance: str, summaries: dict) -> None:
    """Their samples, their per-t losses and a table of bound and sliced W2."""
    ref = points_2d("moons", 1000, state.seed).numpy()
    chart(lesson.fig_samples({k: v.samples for k, v in summaries.items()}, ref), key="fig_samples")
    explain(
        "Look at how closely each model's samples follow the faint data points; the table's sliced W2 puts "
        "a number on it."
    )
    chart(lesson.fig_per_t({k: v.per_t for k, v in summaries.items()}), key="fig_per_t")
    explain(
        "Compare the models step by step: the left panel is what L_simple averages over t, the right panel "
        "what the bound sums."
    )
    st.dataframe(
        [
            {"model": k, "bound (nats)": v.bound, "bits/dim": v.bound_bits_per_dim, "sliced W2 to data": v.swd}
            for k, v in summaries.items()
        ],
        hide_index=True,
    )
    st.caption(
        "Bounds on the same 500 moons points (every 10th t), σ_t² = "
        + VAR_LABELS[variance]
        + ". "
        + lesson.comparison_verdict({k: (v.bound, v.swd) for k, v in summaries.items()})
    )


def three_outputs(state: FrameState) -> None:
    st.subheader("Predict μ, ε or x₀: one model, three outputs")
    explain(lesson.PARAM_TEXT)
    for eq in lesson.EQ_PARAMS:
        equation(eq)
    t_rt = max(1, build_schedule(state).T // 2)
    errs = roundtrip(state, t_rt)
    explain(
        "The table gives the largest error of each round trip: float64 rounding, so the three outputs carry the "
        "same information."
    )
    st.dataframe(
        [{f"round trip (exact model, t = {t_rt})": k, "largest error": v} for k, v in errs.items()], hide_index=True
    )
    show_source(predict_x0_from_eps, predict_eps_from_x0, predict_x0_from_mean)


def try_this() -> None:
    st.header("Try this")
    for tip in lesson.TRY_THIS:
        explain(f"- {tip}")


def page() -> None:
    state = frame()
    st.title("4 · The bound (ELBO), term by term")
    explain(lesson.INTRO)
    a_vae_with_T_layers()
    variance = the_bound_term_by_term(state)
    schedules_move_the_bound(state)
    why_rearrange(state, variance)
    simple_vs_vlb(state, variance)
    three_models_of_two_moons(state, variance)
    three_outputs(state)
    try_this()


page()
