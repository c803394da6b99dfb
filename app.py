"""The entry of the course: the home page and the navigation. Run: `streamlit run app.py` (or `make run`).

The sidebar choices (data, schedule, seed) are shared by every page and live in the URL query parameters,
so a copied link reproduces the view. The lesson list is `lessons.settings.LESSONS`: adding a page is one
line there; its script lives in views/ and imports the frame from `course` (see ARCHITECTURE.md).

Pages draw through small helpers instead of raw streamlit calls, so that two features work everywhere:
- deep links: `url_int`, `url_float`, `url_choice`, `url_bool`, `url_multi` are widgets whose value lives in
  a URL parameter (a bad one is repaired with a notice; the parsing is in lessons.settings). The sidebar
  has a button that copies the address bar's URL, and shows the link of the last full run as inline code.
- presenter mode (`?present=1`, or the sidebar toggle): `chart()` draws only the current slide's figure
  (`slide=i` in the URL, step buttons at the top), `explain()` (prose), `equation()` (LaTeX) and
  `show_source()` (code) draw nothing, and PRESENT_CSS hides the sidebar, captions and tables and
  enlarges the type. Widgets stay: the lecturer drives the figure on the slide.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from course import (
    chart,
    equation,
    explain,
    finish_deck,
    frame,
    init_from_url,
    mnist,
    points_2d,
    presenting,
    render_sidebar,
    show_link,
    show_source,
    start_deck,
)
from course.present import FRAME_CSS, PRESENT_CSS
from lessons import settings

ROOT = Path(__file__).resolve().parent


# --- the home page -----------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner="Running data -> noise -> data ...")
def _story_figure(data: str, schedule_params: tuple, seed: int):
    from lessons import home

    state = settings.FrameState(**dict(schedule_params))
    pts = points_2d(data, 300, seed)
    frames, labels = home.story_frames(pts, settings.build_schedule(state), seed=seed)
    return home.fig_story(frames, labels)


@st.cache_data(max_entries=16)
def _digit_row_figure(schedule_params: tuple, seed: int):
    from lessons import forward, home
    from toy_models.data import mnist_digit

    state = settings.FrameState(**dict(schedule_params))
    s = settings.build_schedule(state)
    times = home.digit_times(s.T, 6)
    return forward.fig_digit_row(home.noised_digit_row(mnist_digit(mnist(), 3, 0)[0], s, times, seed), times)


def home_page() -> None:
    from lessons import home

    state = frame()
    st.title("Diffusion models, one knob at a time")
    explain(home.STORY)
    data = state.data if state.is_2d else "moons"
    key = tuple(sorted({**state.__dict__, "data": data}.items()))
    c1, c2 = st.columns([3, 2])
    with c1:
        chart(_story_figure(data, key, state.seed), key="home_story")
    with c2:
        equation(r"x_0 \;\to\; x_1 \;\to\; \cdots \;\to\; x_T \sim \mathcal{N}(0, I)")
        equation(r"x_T \;\to\; \cdots \;\to\; x_1 \;\to\; x_0")
        explain(
            f"Data **{data}**, schedule **{settings.build_schedule(state).describe()}**. The same story on "
            "a digit (its reverse needs a trained network: lesson 3):"
        )
        try:
            chart(_digit_row_figure(key, state.seed), key="home_digits")
        except ImportError as e:  # toy_models.data not available
            st.info(f"MNIST digits unavailable: {e}")
    st.subheader("The lessons, in order")
    for i, lesson in enumerate(settings.LESSONS, start=1):
        if lesson.page and (ROOT / lesson.page).exists():
            st.page_link(lesson.page, label=f"{i}. {lesson.title}", icon=lesson.icon)
        else:
            st.markdown(f"{i}. **{lesson.title}** — *coming*")
        st.caption(lesson.summary)
    from lessons.home import story_frames

    show_source(story_frames)


def main() -> None:
    st.set_page_config(page_title="Diffusion models course", page_icon="🌫️", layout="wide")
    pages = [st.Page(home_page, title="Home", icon=":material/home:", default=True, url_path="home")]
    pages += [
        st.Page(lesson.page, title=lesson.title, icon=lesson.icon)
        for lesson in settings.LESSONS
        if lesson.page and (ROOT / lesson.page).exists()
    ]
    init_from_url()  # presenter mode is known before the navigation is placed
    nav = st.navigation(pages, position="top" if presenting() else "sidebar")  # the sidebar is hidden then
    st.session_state["_frame_state"] = render_sidebar()
    bar = None
    st.html(FRAME_CSS)
    if presenting():
        st.html(PRESENT_CSS)
        bar = st.container()
    start_deck(nav.url_path or "home")
    nav.run()
    finish_deck(bar)
    show_link()


if __name__ == "__main__":
    main()
