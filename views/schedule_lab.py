"""Lesson 2 page — the schedule lab. Thin: widgets, cached calls into lessons.schedule_lab, render."""

from functools import partial

import streamlit as st

from course import chart, download, equation, explain, exports, frame, mnist, show_source, url_choice, url_int
from lessons import schedule_lab as lesson
from lessons.settings import SCHEDULES, FrameState, build_schedule
from toy_models.schedules import cosine_betas, linear_betas, sigmoid_betas


@st.cache_data(max_entries=32)
def schedules(state: FrameState) -> dict:
    return {name: build_schedule(state, name) for name in SCHEDULES}


@st.cache_data(max_entries=32)
def narrative(T: int) -> str:
    return lesson.narrative(T)


@st.cache_data
def try_this() -> str:
    return lesson.try_this()


# --- the page: one function per section --------------------------------------------------------------
def story(state: FrameState) -> None:
    st.title("2 · Schedule lab")
    explain(lesson.INTRO)
    explain(lesson.NARRATIVE_TERMS)
    equation(lesson.EQ_ABAR)
    explain(narrative(state.T))
    equation(lesson.EQ_COSINE)
    explain(lesson.EQ_COSINE_NOTE)


def three_schedules(state: FrameState, all_s: dict, t: int) -> None:
    """What is left of the signal at t under the sidebar's schedule, and the three schedules side by side."""
    s = all_s[state.schedule]
    left = lesson.signal_left(s, t)
    c = st.columns(4)
    c[0].metric("ᾱ_t", f"{left['abar']:.6g}")
    c[1].metric("signal left sqrt(ᾱ_t)", f"{left['signal']:.4f}")
    c[2].metric("noise sd sqrt(1−ᾱ_t)", f"{left['noise']:.4f}")
    c[3].metric("log-SNR_t", f"{left['log_snr']:.3f}")
    st.caption(
        f"Your schedule: {s.describe()}; ᾱ_T = {float(s.alphas_cumprod[s.T]):.6g}. "
        + ", ".join(f"{n}: ᾱ_t = {float(x.alphas_cumprod[t]):.4g}" for n, x in all_s.items())
    )
    chart(lesson.fig_schedules(all_s, t, state.schedule), key="fig_schedules")
    explain("\n".join(f"- {sentence}" for sentence in lesson.look_for(all_s)))


def two_schedules_one_digit(state: FrameState, all_s: dict, t: int) -> None:
    st.header("Two schedules, one digit, one t")
    explain(lesson.SECTION_DIGITS)
    c1, c2 = st.columns(2)
    a = url_choice("left", "left schedule", SCHEDULES, "linear", key="lab_a", widget=c1.selectbox)
    b = url_choice("right", "right schedule", SCHEDULES, "cosine", key="lab_b", widget=c2.selectbox)
    try:
        from toy_models.data import mnist_digit

        label = url_int("digit", "digit", 0, 9, 3, key="lab_digit")
        img = mnist_digit(mnist(), label, 0)[0]  # (1, 28, 28)
        xa, xb = lesson.same_digit_two_schedules(img, all_s[a], all_s[b], t, state.seed)
        chart(
            lesson.fig_two_digits(
                xa, xb, a, b, t, lesson.signal_left(all_s[a], t)["signal"], lesson.signal_left(all_s[b], t)["signal"]
            ),
            key="fig_two_digits",
        )
        st.caption(lesson.LOOK_DIGITS)
    except ImportError as e:
        st.info(f"MNIST is unavailable: {e}")


@st.fragment  # moving t (or the digit section's choices) reruns only this part, not the sidebar
def at_time_t(state: FrameState):
    all_s = schedules(state)
    s = all_s[state.schedule]
    t = url_int("t", "t (time step)", 0, s.T, max(1, s.T // 2), key="lab_t")
    three_schedules(state, all_s, t)
    two_schedules_one_digit(state, all_s, t)


def schedules_as_npz(all_s: dict, T: int) -> None:
    download(
        "the three schedules as .npz",
        partial(exports.npz_bytes, **lesson.schedule_arrays(all_s)),
        f"schedules_T{T}.npz",
        key="dl_lab_npz",
        help="t, and for each of linear, cosine and sigmoid: beta, abar, sqrt_abar, "
        "sqrt_one_minus_abar, log_snr (float64) and describe (its parameters).",
    )


def page() -> None:
    state = frame()
    all_s = schedules(state)
    story(state)
    at_time_t(state)
    explain(try_this())
    schedules_as_npz(all_s, all_s[state.schedule].T)
    show_source(linear_betas, cosine_betas, sigmoid_betas)


page()
