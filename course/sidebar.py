"""The shared sidebar (data, schedule, T, betas or s, seed, presenter mode, model) and its round trip
through the URL; `frame()` is what every page calls first."""

from __future__ import annotations

import streamlit as st

from lessons import settings

from .my_models import model_sidebar
from .notation import notation_button
from .present import PRESENT
from .resources import device

KEYS = {name: f"frame_{name}" for name in ("data", "schedule", "T", "beta_1", "beta_T", "s", "seed")}
EXPORTS_NOTE = (
    "Exports: the camera icon on a figure (top right) saves it as a PNG; the GIF and .npz buttons "
    "under a figure save its animation or its samples."
)


def init_from_url() -> None:
    """Once per session: sidebar widgets start from the URL, every repair shown as a warning."""
    if st.session_state.get("_frame_ready"):
        return
    state, notices = settings.parse_params(st.query_params.to_dict())
    for name, key in KEYS.items():
        st.session_state[key] = getattr(state, name)
    st.session_state[PRESENT] = settings.parse_bool_param("present", st.query_params.get("present"), False, notices)
    st.session_state["_frame_notices"] = notices
    st.session_state["_frame_ready"] = True


def render_sidebar() -> settings.FrameState:
    """The shared sidebar controls; returns the current FrameState and writes it to the URL."""
    init_from_url()
    sb = st.sidebar
    sb.header("Course settings")
    sb.selectbox(
        "data",
        settings.DATA_CHOICES,
        key=KEYS["data"],
        help="A 2D toy (points) or MNIST digits. The 2D figures use a 2D set; MNIST figures a digit.",
    )
    sb.selectbox("schedule", settings.SCHEDULES, key=KEYS["schedule"], help="How beta_t grows with t.")
    sb.number_input(
        "T (number of steps)",
        settings.T_MIN,
        settings.T_MAX,
        step=50,
        key=KEYS["T"],
        help="How many steps the journey from data to noise takes. A smaller T takes fewer, bigger "
        "steps to the same noise: the β's below are stated for T = 1000 and scaled by 1000/T.",
    )
    if st.session_state[KEYS["schedule"]] == "cosine":
        sb.number_input(
            "δ (cosine offset)",
            settings.S_MIN,
            settings.S_MAX,
            step=0.001,
            format="%.4f",
            key=KEYS["s"],
            help="Keeps β_1 from being tiny near t = 0 (Nichol & Dhariwal 2021 call it s).",
        )
    else:
        sb.number_input(
            "β_1 (stated for T = 1000)",
            settings.BETA_MIN,
            settings.BETA_MAX,
            step=1e-4,
            format="%.5f",
            key=KEYS["beta_1"],
            help="Scaled by 1000/T to the T in force, at most 0.999.",
        )
        sb.number_input(
            "β_T (stated for T = 1000)",
            settings.BETA_MIN,
            settings.BETA_MAX,
            step=1e-3,
            format="%.4f",
            key=KEYS["beta_T"],
            help="Scaled by 1000/T to the T in force, at most 0.999.",
        )
    summary = sb.empty()  # the schedule in force, filled in below once the state is read
    sb.number_input("seed", 0, settings.SEED_MAX, step=1, key=KEYS["seed"])
    sb.toggle(
        "presenter mode",
        key=PRESENT,
        help="Large type, one figure at a time with step buttons, no "
        "sidebar or explanations: for projecting. The URL gets present=1&slide=i.",
    )
    notation_button(sb)
    state = settings.FrameState(**{name: st.session_state[key] for name, key in KEYS.items()})
    summary.caption(settings.schedule_summary(settings.build_schedule(state)))
    model_sidebar(sb)
    sb.caption(f"device: **{settings.device_label(device())}**")
    sb.caption("The URL holds these settings: copy it to share this exact view.")
    sb.caption(EXPORTS_NOTE)
    params = settings.to_params(state)
    for k in ("beta_1", "beta_T", "s"):
        if k not in params and k in st.query_params:
            del st.query_params[k]
    st.query_params.update(params)
    return state


def show_notices() -> None:
    """Show (once) what was repaired in a hand-edited URL."""
    for note in st.session_state.pop("_frame_notices", []) or []:
        st.warning(note, icon=":material/link_off:")
    for note in st.session_state.pop("_page_notices", []) or []:
        st.warning(note, icon=":material/link_off:")


def frame() -> settings.FrameState:
    """For pages: the shared state set up by app.py in this run."""
    state = st.session_state.get("_frame_state")
    if state is None:  # a page run without the frame (should not happen): build it here
        state = render_sidebar()
    show_notices()
    mismatch = settings.prior_mismatch(settings.build_schedule(state))
    if mismatch:
        st.warning(mismatch, icon=":material/warning:")
    return state
