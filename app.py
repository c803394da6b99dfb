"""The entry of the course: the home page and the shared frame (sidebar, URL, navigation).

Run: `streamlit run app.py`. The sidebar choices (data, schedule, seed) are shared by every page
and live in the URL query parameters, so a copied link reproduces the view. The lesson list is
`lessons.frame.LESSONS`: adding a page is one line there.

Pages import `frame()` and `show_source()` from here; the navigation itself runs only when
streamlit executes this file as the main script.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import streamlit as st

from lessons import frame as F

ROOT = Path(__file__).resolve().parent
KEYS = {name: f"frame_{name}" for name in ("data", "schedule", "T", "beta_1", "beta_T", "s", "seed")}


# --- caching of shared, read-only things -----------------------------------------------------------
@st.cache_resource
def device() -> str:
    return F.pick_device()


@st.cache_data(max_entries=64)
def points_2d(name: str, n: int, seed: int):
    """(x (n, 2) float32 tensor) of a 2D toy, from toy_models.data."""
    from toy_models.data import sample_2d

    return sample_2d(name, n, seed=seed)[0]


@st.cache_resource
def mnist():
    """The MNIST data (embedded 5,000-digit subset unless $MNIST_DIR points at full MNIST)."""
    from toy_models.data import load_mnist

    return load_mnist()


@st.cache_resource(max_entries=8, show_spinner="Loading shipped weights ...")
def checkpoint(name: str, dev: str = "cpu"):
    """A shipped checkpoint, loaded once per server; raises CheckpointError (not cached) when missing or broken."""
    from toy_models.checkpoints import load_checkpoint

    return load_checkpoint(name, device=dev)


def try_checkpoint(name: str, dev: str = "cpu"):
    """(Loaded, None), or (None, the error's message): a missing or broken checkpoint never stops a page."""
    from toy_models.checkpoints import CheckpointError

    try:
        return checkpoint(name, dev), None
    except CheckpointError as e:
        return None, str(e)


@st.cache_resource
def ground_truth_gmm():
    from toy_models.gmm import default_gmm

    return default_gmm()


# --- the shared frame --------------------------------------------------------------------------------
def _legacy_mode() -> bool:
    """True when streamlit runs a page in the legacy pages/-folder mode (no shared frame).

    On a freshly started server, the first visitor who deep-links to a page is served by the
    v1 pages-folder runner until some session calls st.navigation (see DESIGN.md).
    """
    from streamlit.runtime.pages_manager import PagesManager

    return bool(PagesManager.uses_pages_directory)


def _leave_legacy_mode() -> None:
    """Switch the server to st.navigation mode and rerun: the same URL then runs app.py first."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def _init_from_url() -> None:
    """Once per session: sidebar widgets start from the URL, every repair shown as a warning."""
    if st.session_state.get("_frame_ready"):
        return
    state, notices = F.parse_params(st.query_params.to_dict())
    for name, key in KEYS.items():
        st.session_state[key] = getattr(state, name)
    st.session_state["_frame_notices"] = notices
    st.session_state["_frame_ready"] = True


def render_sidebar() -> F.FrameState:
    """The shared sidebar controls; returns the current FrameState and writes it to the URL."""
    _init_from_url()
    sb = st.sidebar
    sb.header("Course settings")
    sb.selectbox("data", F.DATA_CHOICES, key=KEYS["data"],
                 help="A 2D toy (points) or MNIST digits. The 2D figures use a 2D set; MNIST figures a digit.")
    sb.selectbox("schedule", F.SCHEDULES, key=KEYS["schedule"], help="How beta_t grows with t.")
    sb.number_input("T (number of steps)", F.T_MIN, F.T_MAX, step=50, key=KEYS["T"])
    if st.session_state[KEYS["schedule"]] == "cosine":
        sb.number_input("s (cosine offset)", F.S_MIN, F.S_MAX, step=0.001, format="%.4f", key=KEYS["s"])
    else:
        sb.number_input("beta_1", F.BETA_MIN, F.BETA_MAX, step=1e-4, format="%.5f", key=KEYS["beta_1"])
        sb.number_input("beta_T", F.BETA_MIN, F.BETA_MAX, step=1e-3, format="%.4f", key=KEYS["beta_T"])
    sb.number_input("seed", 0, F.SEED_MAX, step=1, key=KEYS["seed"])
    state = F.FrameState(**{name: st.session_state[key] for name, key in KEYS.items()})
    sb.caption(f"device: **{F.device_label(device())}**")
    sb.caption("The URL holds these settings: copy it to share this exact view.")
    params = F.to_params(state)
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


def frame() -> F.FrameState:
    """For pages: the shared state set up by app.py in this run (leaves legacy mode if needed)."""
    if _legacy_mode():
        _leave_legacy_mode()
    state = st.session_state.get("_frame_state")
    if state is None:  # a page run without the frame (should not happen): build it here
        state = render_sidebar()
    show_notices()
    return state


def url_int(name: str, label: str, lo: int, hi: int, default: int, *, key: str, widget=None, **kw) -> int:
    """A slider whose value lives in the URL parameter `name` (clamped to [lo, hi], reset if invalid)."""
    if key not in st.session_state:
        notes = st.session_state.setdefault("_page_notices", [])
        st.session_state[key] = F.parse_int_param(name, st.query_params.get(name), lo, hi, default, notes)
        for note in notes:
            st.warning(note, icon=":material/link_off:")
        notes.clear()
    st.session_state[key] = min(max(int(st.session_state[key]), lo), hi)  # T may have shrunk
    if lo == hi:  # a slider needs a range; T = 1 with t in 0..0 cannot happen, but be safe
        st.caption(f"{label}: {lo}")
        value = lo
    else:
        value = (widget or st.slider)(label, lo, hi, key=key, **kw)
    st.query_params[name] = str(value)
    return int(value)


def show_source(*functions, label: str | None = None) -> None:
    """An expander with the real source (inspect.getsource) of the functions a figure runs."""
    names = ", ".join(f.__name__ for f in functions)
    with st.expander(label or f"Show the code that runs: {names}", icon=":material/code:"):
        for f in functions:
            st.code(inspect.getsource(f), language="python")


# --- the home page -----------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner="Running data -> noise -> data ...")
def _story_figure(data: str, schedule_params: tuple, seed: int):
    from lessons import home

    state = F.FrameState(**dict(schedule_params))
    pts = points_2d(data, 300, seed)
    frames, labels = home.story_frames(pts, F.build_schedule(state), seed=seed)
    return home.fig_story(frames, labels)


@st.cache_data(max_entries=16)
def _digit_row_figure(schedule_params: tuple, seed: int):
    from lessons import forward, home

    from toy_models.data import mnist_digit

    state = F.FrameState(**dict(schedule_params))
    s = F.build_schedule(state)
    times = home.digit_times(s.T, 6)
    return forward.fig_digit_row(home.noised_digit_row(mnist_digit(mnist(), 3, 0)[0], s, times, seed), times)


def home_page() -> None:
    from lessons import home

    state = frame()
    st.title("Diffusion models, one knob at a time")
    st.markdown(home.STORY)
    data = state.data if state.is_2d else "moons"
    key = tuple(sorted({**state.__dict__, "data": data}.items()))
    c1, c2 = st.columns([3, 2])
    with c1:
        st.plotly_chart(_story_figure(data, key, state.seed), key="home_story")
    with c2:
        st.latex(r"x_0 \;\to\; x_1 \;\to\; \cdots \;\to\; x_T \sim \mathcal{N}(0, I)")
        st.latex(r"x_T \;\to\; \cdots \;\to\; x_1 \;\to\; x_0")
        st.markdown(f"Data **{data}**, schedule **{F.build_schedule(state).describe()}**. The same story on "
                    "a digit (its reverse needs a trained network: lesson 3):")
        try:
            st.plotly_chart(_digit_row_figure(key, state.seed), key="home_digits")
        except ImportError as e:  # toy_models.data not available
            st.info(f"MNIST digits unavailable: {e}")
    st.subheader("The lessons, in order")
    for i, lesson in enumerate(F.LESSONS, start=1):
        if lesson.page and (ROOT / lesson.page).exists():
            st.page_link(lesson.page, label=f"{i}. {lesson.title}", icon=lesson.icon)
        else:
            st.markdown(f"{i}. **{lesson.title}** — *coming*")
        st.caption(lesson.summary)
    from lessons.home import story_frames

    show_source(story_frames)


def main() -> None:
    st.set_page_config(page_title="Diffusion models course", page_icon=":material/blur_on:", layout="wide")
    pages = [st.Page(home_page, title="Home", icon=":material/home:", default=True, url_path="home")]
    pages += [st.Page(lesson.page, title=lesson.title, icon=lesson.icon)
              for lesson in F.LESSONS if lesson.page and (ROOT / lesson.page).exists()]
    nav = st.navigation(pages)
    st.session_state["_frame_state"] = render_sidebar()
    nav.run()


if __name__ == "__main__":
    main()
