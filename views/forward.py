"""Lesson 1 page — forward noising. Thin: widgets, cached calls into lessons.forward, render."""

from functools import partial

import streamlit as st

from course import (
    chart,
    download,
    equation,
    explain,
    exports,
    frame,
    ground_truth_gmm,
    lazy_section,
    mnist,
    points_2d,
    show_source,
    url_int,
)
from lessons import forward as lesson
from lessons.settings import FrameState, build_schedule
from toy_models.diffusion import q_chain, q_sample, q_step_sample

N_POINTS = 1000  # points drawn in the 2D figures
N_BACKDROP = 300  # of them, drawn faint behind x_t: the data's shape, at a third of the SVG nodes a move redraws
N_ANIM = 400  # points in the browser animation (payload, and SVG markers to draw)


@st.cache_data(max_entries=32)
def xt_2d(state: FrameState, data: str, t: int):
    x0 = points_2d(data, N_POINTS, state.seed)
    return x0.numpy(), lesson.noised(build_schedule(state), x0, t, state.seed)


@st.cache_resource(max_entries=16)  # read-only arrays: no copy per rerun
def animation_frames(state: FrameState, data: str):
    """(x0 (B, 2), frames (F, B, 2), times (F,), alpha-bar at times (F,)) of the browser animation."""
    s = build_schedule(state)
    x0 = points_2d(data, N_POINTS, state.seed)[:N_ANIM]
    times = lesson.animation_times(s.T, 24)
    return x0.numpy(), lesson.forward_frames(s, x0, times, state.seed), times, s.alphas_cumprod[times].numpy()


@st.cache_resource(max_entries=16)  # a read-only figure: no copy per rerun
def animation_fig(state: FrameState, data: str):
    return lesson.fig_animation(*animation_frames(state, data))


@st.cache_data(max_entries=16)
def trajectories(state: FrameState, data: str, n: int):
    s = build_schedule(state)
    ts, xs = lesson.chain_paths(s, points_2d(data, N_POINTS, state.seed)[:n], state.seed)
    return ts, xs, s.alphas_cumprod[ts].numpy()


@st.cache_data(max_entries=16)
def kl_curve(state: FrameState):
    """(times, KL(q(x_t) || N(0, I)), E_x0 KL(q(x_t | x_0) || N(0, I))) for the Gaussian mixture."""
    s = build_schedule(state)
    times = lesson.animation_times(s.T, 40)
    return (
        times,
        lesson.gmm_kl_curve(ground_truth_gmm(), s, times),
        lesson.prior_term_curve(ground_truth_gmm(), s, times),
    )


@st.cache_data
def try_this() -> str:
    return lesson.try_this(ground_truth_gmm())


@st.cache_resource(max_entries=4)  # (T+1, 1000, 2) float32, read-only: no copy per rerun
def chain_copies(state: FrameState, data: str, index: int):
    return lesson.chain_copies(build_schedule(state), points_2d(data, N_POINTS, state.seed)[index], 1000, state.seed)


@st.cache_data(max_entries=64)
def kl_at(state: FrameState, t: int) -> float:
    return float(lesson.gmm_kl_curve(ground_truth_gmm(), build_schedule(state), [t])[0])


@st.cache_resource(max_entries=4)
def digit_row_fig(state: FrameState, label: int, which: int):
    from lessons.home import digit_times, noised_digit_row
    from toy_models.data import mnist_digit

    s = build_schedule(state)
    row_t = digit_times(s.T, 7)
    return lesson.fig_digit_row(noised_digit_row(mnist_digit(mnist(), label, which)[0], s, row_t, state.seed), row_t)


# --- the page: one function per section --------------------------------------------------------------
def story(state: FrameState) -> None:
    st.title("1 · Forward noising")
    explain(lesson.INTRO)
    st.header("The story in words")
    explain(lesson.NARRATIVE)
    equation(lesson.EQ_STEP)
    equation(lesson.EQ_CLOSED)
    if not state.is_2d:
        st.info("The data setting is MNIST: the 2D figures use the Gaussian mixture (gmm); the digit is further down.")


# Three sections, each an st.fragment with its own t slider: moving one redraws only its own figures (a
# third of the page), which is what a slider costs the server and the browser on every move. What does not
# move with t (the section's idea, its equation) stays outside the fragment: a move does not re-send it.
def t_slider(s, name: str, key: str, label: str = "t (time step)") -> int:
    return url_int(name, label, 0, s.T, max(1, s.T // 10), key=key)


@st.fragment
def at_time_t(state: FrameState, data: str):
    s = build_schedule(state)
    t = t_slider(s, "t", "forward_t")
    abar_t = float(s.alphas_cumprod[t])
    c = st.columns(3)
    c[0].metric("ᾱ_t at this t", f"{abar_t:.6g}", help="from make_schedule: alphas_cumprod[t]")
    c[1].metric("signal left sqrt(ᾱ_t)", f"{abar_t**0.5:.4f}")
    c[2].metric("noise sd sqrt(1−ᾱ_t)", f"{(1 - abar_t) ** 0.5:.4f}")
    st.caption(f"Schedule: {s.describe()}; ᾱ_T = {float(s.alphas_cumprod[s.T]):.6g} at t = T.")

    x0, xt = xt_2d(state, data, t)
    c1, c2 = st.columns([3, 2])
    chart(lesson.fig_xt(x0[:N_BACKDROP], xt, t, abar_t), key="fig_xt", where=c1)
    c1.caption(
        f"Sample mean of x_t: ({xt[:, 0].mean():.3f}, {xt[:, 1].mean():.3f}); sample variance: "
        f"({xt[:, 0].var():.3f}, {xt[:, 1].var():.3f}). Look for: they head to 0 and 1 as t grows, and the "
        "histograms on the edges settle onto the N(0, 1) curve."
    )
    times, kl, prior = kl_curve(state)
    chart(lesson.fig_kl_curve(times, kl, t, prior), key="fig_kl", where=c2)
    explain(
        f"For the Gaussian mixture (its density is exact), **KL(q(x_{{{t}}}) ‖ N(0, I)) = {kl_at(state, t):.4g} "
        "nats** at this t. Look for the gap between the curves. The solid one compares the whole noised data "
        "q(x_t) with N(0, I); the dashed one compares each q(x_t | x_0) with N(0, I) and averages over x_0, "
        "and is larger by the mutual information I(x_0; x_t), what x_t still tells about x_0. At t = T the "
        f"dashed value is the bound's prior term **L_T = E over x_0 of KL(q(x_T | x_0) ‖ N(0, I)) = "
        f"{prior[-1]:.3g} nats**, while KL(q(x_T) ‖ N(0, I)) = {kl[-1]:.3g} nats.",
        where=c2,
    )


@st.fragment
def steps_vs_jump(state: FrameState, data: str):
    s = build_schedule(state)
    c1, c2 = st.columns(2)
    with c1:
        t = t_slider(s, "t_chain", "forward_t_chain", "t of the two routes")
    idx = url_int("point", "which data point", 0, N_POINTS - 1, 0, key="forward_point", widget=c2.slider)
    r = lesson.chain_vs_closed(
        s, points_2d(data, N_POINTS, state.seed)[idx], t, 1000, state.seed, chain=chain_copies(state, data, idx)
    )
    chart(lesson.fig_chain_vs_closed(r), key="fig_chain")
    rows = [
        {"route": k, "mean x₁": v["mean"][0], "mean x₂": v["mean"][1], "var x₁": v["var"][0], "var x₂": v["var"][1]}
        for k, v in r.moments().items()
    ]
    st.table(rows, hide_index=True)
    st.caption(lesson.LOOK_CHAIN)


@st.fragment
def a_digit(state: FrameState):
    try:
        from toy_models.data import mnist_digit

        digits = mnist()
    except ImportError as e:
        st.info(f"MNIST is unavailable: {e}")
        return
    s = build_schedule(state)
    c1, c2, c3 = st.columns(3)
    label = url_int("digit", "digit", 0, 9, 3, key="forward_digit", widget=c1.slider)
    n_of_class = int((digits.y_test == label).sum())
    which = url_int(
        "which", f"which {label} (of {n_of_class})", 0, n_of_class - 1, 0, key="forward_which", widget=c2.slider
    )
    with c3:
        t = t_slider(s, "t_digit", "forward_t_digit", "t of the digit")
    img = mnist_digit(digits, label, which)[0]  # (1, 28, 28)
    chart(digit_row_fig(state, label, which), key="fig_digit_row")
    xt_img = lesson.noised(s, img[None], t, state.seed)[0, 0]  # (28, 28)
    c1, c2 = st.columns(2)
    chart(lesson.fig_digit(xt_img, t), key="fig_digit", where=c1)
    chart(lesson.fig_pixel_hist(img[0].numpy(), xt_img, t), key="fig_pixels", where=c2)
    st.caption(f"{lesson.LOOK_DIGIT} Source: {digits.source}. {digits.message}")


def play_it(state: FrameState, data: str) -> None:
    """The browser animation, computed and sent once its section is opened."""
    play, play_open = lazy_section(
        "Play it: t from 0 to T in your browser", key="forward_play", icon=":material/play_arrow:"
    )
    if not play_open:
        return
    s = build_schedule(state)
    with play:
        chart(animation_fig(state, data), key="fig_anim")
        st.caption(
            "Each frame is an exact draw of q(x_t | x_0) with one noise vector per point, so points glide. "
            "Look for: the shape's fine detail goes first, its overall layout last, and the last frames are "
            "one round cloud."
        )
        x0_a, frames_a, times_a, abar_a = animation_frames(state, data)
        titles = [f"t = {t}, ᾱ_t = {a:.3g}" for t, a in zip(times_a, abar_a)]
        download(
            "the animation as a GIF",
            partial(exports.gif_from_points, frames_a, titles, backdrop=x0_a),
            f"forward_{data}_{s.name}_T{s.T}.gif",
            key="dl_forward_anim",
            help=f"{len(times_a)} frames of {len(x0_a)} points over the data; made when you click.",
        )


def markov_paths(state: FrameState, data: str) -> None:
    st.subheader("A few points, one Markov step at a time")
    explain(lesson.SECTION_PATHS)
    n_traj = url_int("chains", "number of chains", 1, 8, 3, key="forward_n_traj")
    ts, paths, abar = trajectories(state, data, n_traj)
    chart(lesson.fig_trajectories(ts, paths, abar), key="fig_traj")
    st.caption(lesson.LOOK_PATHS)
    titles = [f"t = {t:.0f}, ᾱ_t = {a:.3g}" for t, a in zip(ts, abar)]
    download(
        "the chains as a GIF",
        partial(
            exports.gif_from_points,
            paths,
            titles,
            label="x_t (one Markov chain each)",
            trails=range(paths.shape[1]),
            backdrop=points_2d(data, N_POINTS, state.seed)[:N_ANIM].numpy(),
        ),
        f"forward_chains_{data}.gif",
        key="dl_forward_chains",
        help=f"The {paths.shape[1]} chains in the plane: {min(len(ts), exports.MAX_FRAMES)} of their {len(ts)} "
        "kept steps.",
    )


def page() -> None:
    state = frame()
    data = state.data if state.is_2d else "gmm"  # the 2D figures need 2D data
    story(state)
    st.header(f"x_t on 2D data ({data})")
    explain(lesson.SECTION_XT)
    equation(lesson.EQ_KL)
    at_time_t(state, data)
    show_source(q_sample, lesson.gmm_kl_curve)
    st.header("Many small steps = one jump")
    explain(lesson.SECTION_CHAIN)
    steps_vs_jump(state, data)
    show_source(q_chain, q_step_sample)
    st.header("A digit")
    explain(lesson.SECTION_DIGIT)
    a_digit(state)
    play_it(state, data)
    markov_paths(state, data)
    explain(try_this())


page()
