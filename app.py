"""The entry of the course: the home page and the shared frame (sidebar, URL, navigation).

Run: `streamlit run app.py`. The sidebar choices (data, schedule, seed) are shared by every page
and live in the URL query parameters, so a copied link reproduces the view. The lesson list is
`lessons.frame.LESSONS`: adding a page is one line there.

Pages import `frame()` and `show_source()` from here; the navigation itself runs only when
streamlit executes this file as the main script.

Pages draw through small helpers instead of raw streamlit calls, so that two features work everywhere:
- deep links: `url_int`, `url_float`, `url_choice`, `url_bool`, `url_multi` are widgets whose value lives in
  a URL parameter (a bad one is repaired with a notice; the parsing is in lessons.frame). The sidebar
  shows the link of the current view in an st.code block, which has a copy button.
- presenter mode (`?present=1`, or the sidebar toggle): `chart()` draws only the current slide's figure
  (`slide=i` in the URL, step buttons at the top), `explain()` (prose), `equation()` (LaTeX) and
  `show_source()` (code) draw nothing, and PRESENT_CSS hides the sidebar, captions and tables and
  enlarges the type. Widgets stay: the lecturer drives the figure on the slide.
"""
from __future__ import annotations

import functools
import inspect
from pathlib import Path

import streamlit as st

from lessons import frame as F

ROOT = Path(__file__).resolve().parent
KEYS = {name: f"frame_{name}" for name in ("data", "schedule", "T", "beta_1", "beta_T", "s", "seed")}
PRESENT = "frame_present"  # the sidebar's presenter-mode toggle (URL: present=1)
EXPORTS_NOTE = ("Exports: the camera icon on a figure (top right) saves it as a PNG; the GIF and .npz buttons "
                "under a figure save its animation or its samples.")


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
    """(Loaded, None), or (None, the error's message): a missing or broken checkpoint never stops a page.
    A session model's key ("mine:<id>", see model_for) gives that model (on the CPU)."""
    from toy_models.checkpoints import CheckpointError

    if is_session_model(name):
        loaded = session_lab().models.get(name)
        return (loaded, None) if loaded is not None else (
            None, f"Your model {name!r} is no longer in this session (removed, or the session restarted).")
    try:
        return checkpoint(name, dev), None
    except CheckpointError as e:
        return None, str(e)


@st.cache_resource
def ground_truth_gmm():
    from toy_models.gmm import default_gmm

    return default_gmm()


# --- use my model: models trained in the training lab, for this session only ----------------------
MODEL_KEY = "frame_model"  # the sidebar's "model" choice: SHIPPED or a session model's key
SHIPPED = "shipped"


def _lab_keeper():
    """Holds a disconnected session's lab for server.disconnectedSessionTTL seconds (lessons.jobs.LabKeeper)."""
    from lessons.jobs import default_keeper

    return default_keeper(float(st.get_option("server.disconnectedSessionTTL")))


def _session_id() -> str:
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "bare"


def _hold_lab(lab) -> None:
    """Streamlit releases session resources on every disconnect: hold the lab instead of ending it."""
    _lab_keeper().hold(lab.owner, lab)


@st.cache_resource(scope="session", on_release=_hold_lab, show_spinner=False)
def _session_lab():
    from lessons.jobs import SessionLab

    sid = _session_id()
    return _lab_keeper().adopt(sid) or SessionLab(owner=sid)


def session_lab():
    """This session's training jobs and trained models (lessons.jobs.SessionLab). A disconnect holds them
    for server.disconnectedSessionTTL seconds (a reconnect finds its job still running); after that the
    session is gone, its jobs stop and its models are freed."""
    _lab_keeper().reap()
    return _session_lab()


def is_session_model(name: str) -> bool:
    from lessons.jobs import KEY_PREFIX

    return str(name).startswith(KEY_PREFIX)


def _model_sidebar(sb) -> None:
    """The sidebar's "model" choice, shown only once this session has trained a model."""
    from lessons.jobs import model_label

    models = session_lab().models
    keys = models.keys()
    st.session_state["_frame_models_shown"] = tuple(keys)  # the lab reruns the app when this is stale
    if not keys:
        st.session_state.pop(MODEL_KEY, None)
        return
    if st.session_state.get(MODEL_KEY) not in [SHIPPED, *keys]:  # removed in the lab
        st.session_state[MODEL_KEY] = SHIPPED
    sb.selectbox("model", [SHIPPED, *keys], key=MODEL_KEY,
                 format_func=lambda k: "shipped models" if k == SHIPPED else f"my model {model_label(models.get(k))}",
                 help="Use a model you trained in the training lab instead of the shipped one, wherever a lesson "
                      "uses a shipped 2D model trained on the same data.")
    chosen = models.get(st.session_state[MODEL_KEY]) if st.session_state[MODEL_KEY] != SHIPPED else None
    if chosen is not None:
        data = chosen.recipe.get("data")
        sb.caption(f"Lessons whose 2D model is trained on **{data}** use yours; the others keep the shipped ones."
                   if data != "own" else "No lesson uses a model of your own points: download it from the lab.")


def model_for(shipped_name: str) -> str:
    """The checkpoint a lesson should load in place of the shipped `shipped_name`: the user's own model
    when the sidebar says so and it was trained on the same data, else `shipped_name` itself."""
    key = st.session_state.get(MODEL_KEY, SHIPPED)
    if key == SHIPPED or not is_session_model(key):
        return shipped_name
    loaded = session_lab().models.get(key)
    if loaded is None:
        return shipped_name
    from toy_models.recipes import RECIPES

    data = RECIPES[shipped_name].data if shipped_name in RECIPES else shipped_name
    return key if loaded.recipe.get("data") == data else shipped_name
# --- end of "use my model" ---------------------------------------------------------------------------


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
    st.session_state[PRESENT] = F.parse_bool_param("present", st.query_params.get("present"), False, notices)
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
    sb.toggle("presenter mode", key=PRESENT, help="Large type, one figure at a time with step buttons, no "
              "sidebar or explanations: for projecting. The URL gets present=1&slide=i.")
    state = F.FrameState(**{name: st.session_state[key] for name, key in KEYS.items()})
    _model_sidebar(sb)
    sb.caption(f"device: **{F.device_label(device())}**")
    sb.caption("The URL holds these settings: copy it to share this exact view.")
    sb.caption(EXPORTS_NOTE)
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


def _from_url(name: str, key: str, parse) -> None:
    """Once per widget life: its session value from URL parameter `name` (parse(raw, notes)), each repair
    shown as a warning where the widget is. Later runs keep the widget's own state."""
    if key not in st.session_state:
        notes: list[str] = []
        st.session_state[key] = parse(st.query_params.get(name), notes)
        for note in notes:
            st.warning(note, icon=":material/link_off:")


def _to_url(name: str, value) -> None:
    """Write a widget's value to the URL (only when it changed: every write is a message to the browser)."""
    text = F.format_param(value)
    if st.query_params.get(name) != text:
        st.query_params[name] = text


def url_int(name: str, label: str, lo: int, hi: int, default: int, *, key: str, widget=None, **kw) -> int:
    """A slider whose value lives in the URL parameter `name` (clamped to [lo, hi], reset if invalid)."""
    _from_url(name, key, lambda raw, notes: F.parse_int_param(name, raw, lo, hi, default, notes))
    st.session_state[key] = min(max(int(st.session_state[key]), lo), hi)  # T may have shrunk
    if lo == hi:  # a slider needs a range; T = 1 with t in 0..0 cannot happen, but be safe
        st.caption(f"{label}: {lo}")
        value = lo
    else:
        value = (widget or st.slider)(label, lo, hi, key=key, **kw)
    _to_url(name, int(value))
    return int(value)


def url_float(name: str, label: str, lo: float, hi: float, default: float, step: float | None = None, *,
              key: str, widget=None, **kw) -> float:
    """A float slider (or widget=st.number_input) whose value lives in the URL parameter `name`:
    clamped to [lo, hi] and snapped to the step grid, reset if not a number."""
    _from_url(name, key, lambda raw, notes: F.parse_float_param(name, raw, lo, hi, default, notes, step))
    st.session_state[key] = min(max(float(st.session_state[key]), lo), hi)
    value = (widget or st.slider)(label, float(lo), float(hi), step=step, key=key, **kw)
    _to_url(name, float(value))
    return float(value)


def url_choice(name: str, label: str, options, default, *, key: str, widget=None, **kw):
    """A selectbox (or widget=st.radio / st.select_slider) whose choice lives in the URL parameter `name`
    (its text, str(option)); an unknown one resets to the default with a notice."""
    options = list(options)
    _from_url(name, key, lambda raw, notes: F.parse_choice_param(name, raw, options, default, notes))
    if st.session_state[key] not in options:  # the options changed under it
        st.session_state[key] = default
    value = (widget or st.selectbox)(label, options, key=key, **kw)
    _to_url(name, value)
    return value


def url_bool(name: str, label: str, default: bool = False, *, key: str, widget=None, **kw) -> bool:
    """A toggle (or widget=st.checkbox) whose state lives in the URL parameter `name` as 1 or 0."""
    _from_url(name, key, lambda raw, notes: F.parse_bool_param(name, raw, default, notes))
    value = (widget or st.toggle)(label, key=key, **kw)
    _to_url(name, bool(value))
    return bool(value)


def url_multi(name: str, label: str, options, default, *, key: str, max_selections: int | None = None,
              widget=None, **kw) -> list:
    """A multiselect whose choices live in the URL parameter `name`, comma-separated."""
    options = list(options)
    _from_url(name, key, lambda raw, notes: F.parse_multi_param(name, raw, options, default, notes, max_selections))
    st.session_state[key] = [v for v in st.session_state[key] if v in options]
    value = (widget or st.multiselect)(label, options, key=key, max_selections=max_selections, **kw)
    _to_url(name, list(value))
    return list(value)


# --- presenter mode ------------------------------------------------------------------------------
# The rule: in presenter mode a page keeps its title, its controls (every widget, so the lecturer drives
# the figure), its notices and metrics, and ONE figure: the current slide. Prose (explain), equations
# (equation) and code (show_source) are not rendered; captions, tables, section headers, expanders and
# download buttons are hidden by PRESENT_CSS. Slides are the page's charts in the order the script draws
# them; `slide` in the URL names the current one (1-based).
PRESENT_CSS = """<style>
html { font-size: 22px; }
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
[data-testid="stMain"] [data-testid="stCaptionContainer"], [data-testid="stMain"] [data-testid="stDataFrame"],
[data-testid="stMain"] [data-testid="stExpander"], [data-testid="stMain"] [data-testid="stDownloadButton"],
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { display: none !important; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding: 4.5rem 2rem 2rem; }  /* below the top nav */
[data-testid="stHorizontalBlock"]:has(.stPlotlyChart) { flex-direction: column; }
[data-testid="stHorizontalBlock"]:has(.stPlotlyChart) > [data-testid="stColumn"] { width: 100% !important;
  flex: 1 1 auto !important; }
</style>"""
PRESENT_FONT = 20  # plotly font size of the figure on a slide (the course's figures use 12-14)


def presenting() -> bool:
    """True in presenter mode (the sidebar toggle; URL present=1)."""
    return bool(st.session_state.get(PRESENT, False))


def _fragment_run() -> bool:
    """True while streamlit reruns only a fragment (the rest of the page is not executed)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def _deck() -> dict:
    """This session's slides: {"page": url path, "keys": chart keys in drawing order, "slides": {page: i}}."""
    return st.session_state.setdefault("_deck", {"page": "", "keys": [], "slides": {}})


def _slide_number(key: str) -> int:
    """1-based position of chart `key` among the page's charts. A full run lists the keys as they are
    drawn; a fragment rerun (only part of the page runs) looks them up in the last full run's list."""
    keys = _deck()["keys"]
    if key not in keys:
        if _fragment_run():
            return 0
        keys.append(key)
    return keys.index(key) + 1


def _current_slide() -> int:
    d = _deck()
    return d["slides"].get(d["page"], 1)


def _large(fig):
    """A copy of the figure with larger type and height for projection (the cached original is shared)."""
    d = fig.to_dict() if hasattr(fig, "to_dict") else dict(fig)
    layout = d["layout"] = dict(d.get("layout") or {})
    layout["font"] = {**(layout.get("font") or {}), "size": PRESENT_FONT}
    layout["height"] = max(int((layout.get("height") or 450) * 1.4), 500)
    return d


def chart(fig, *, key: str, where=None, **kw):
    """Every figure of the course goes through here: st.plotly_chart with the PNG camera configured
    (lessons.exports.png_config: `<key>.png` at 2x). where: a column or container (default: the page).
    In presenter mode only the current slide's figure is drawn (larger); the others return None."""
    from lessons.exports import png_config

    if presenting():
        if _slide_number(key) != _current_slide():
            return None
        fig = _large(fig)
    return (where or st).plotly_chart(fig, key=key, config={**png_config(key), **kw.pop("config", {})}, **kw)


MIME = {".gif": "image/gif", ".npz": "application/octet-stream", ".png": "image/png"}


def download(label: str, make, file_name: str, *, key: str, where=None, help: str | None = None) -> None:
    """A download button whose bytes are built only when clicked: make() -> bytes runs then, on a
    separate thread (so no streamlit calls inside it; pass arrays already computed). A click does not
    rerun the page. Left out in presenter mode."""
    if presenting():
        return
    (where or st).download_button(label, data=make, file_name=file_name, key=key, help=help, on_click="ignore",
                                  mime=MIME.get(Path(file_name).suffix, "application/octet-stream"),
                                  icon=":material/download:")


def explain(text: str, *, where=None) -> None:
    """Prose (markdown): shown to a student, left out in presenter mode."""
    if not presenting():
        (where or st).markdown(text)


def equation(latex: str, *, where=None) -> None:
    """An equation (LaTeX): shown to a student, left out in presenter mode."""
    if not presenting():
        (where or st).latex(latex)


def _step(delta: int) -> None:
    d = _deck()
    d["slides"][d["page"]] = max(1, _current_slide() + delta)


def _stop_presenting() -> None:
    st.session_state[PRESENT] = False


def _start_deck(page: str) -> None:
    """Before a full page run: a fresh list of chart keys; the page's slide from the URL on first sight."""
    d = _deck()
    d["page"], d["keys"] = page, []
    if presenting() and page not in d["slides"]:
        notes = st.session_state.setdefault("_frame_notices", [])
        d["slides"][page] = F.parse_int_param("slide", st.query_params.get("slide"), 1, 10**6, 1, notes)


def _finish_deck(bar) -> None:
    """After a full page run: repair a slide past the last figure, draw the step bar, write the URL."""
    d = _deck()
    if not presenting():
        for name in ("present", "slide"):
            if name in st.query_params:
                del st.query_params[name]
        return
    n, i = len(d["keys"]), _current_slide()
    if n and i > n:
        st.session_state.setdefault("_frame_notices", []).append(
            f"slide={i} is outside [1, {n}] (this page has {n} figures); showing figure {n}.")
        d["slides"][d["page"]] = n
        st.rerun()
    _to_url("present", True)
    _to_url("slide", i)
    c = bar.columns([2, 3, 2, 2], vertical_alignment="center")
    c[0].button("previous figure", key="present_prev", icon=":material/arrow_back:", on_click=_step, args=(-1,),
                disabled=i <= 1, width="stretch")
    c[1].markdown(f"**figure {i} of {n}**" if n else "**this page has no figures**")
    c[2].button("next figure", key="present_next", icon=":material/arrow_forward:", on_click=_step, args=(1,),
                disabled=i >= n, width="stretch")
    c[3].button("leave presenter mode", key="present_exit", icon=":material/close:", on_click=_stop_presenting,
                width="stretch")


def page_link() -> str:
    """The full URL of the current view: st.context.url (scheme, host, page path) + every query parameter."""
    from urllib.parse import urlencode

    base = st.context.url or f"/{_deck()['page']}"
    query = urlencode(st.query_params.to_dict())
    return f"{base}?{query}" if query else base


def show_link() -> None:
    """The copy-link control: the link of this view in st.code (which has a copy button), in the sidebar."""
    st.sidebar.caption("Link to this view (the copy button is on the right):")
    st.sidebar.code(page_link(), language=None, wrap_lines=True)


def show_source(*functions, label: str | None = None) -> None:
    """An expander with the real source (inspect.getsource) of the functions a figure runs
    (left out in presenter mode)."""
    if presenting():
        return
    names = ", ".join(f.__name__ for f in functions)
    with st.expander(label or f"Show the code that runs: {names}", icon=":material/code:"):
        for f in functions:
            st.code(_source(f), language="python")


@functools.lru_cache(maxsize=256)
def _source(function) -> str:
    """inspect.getsource, read once per function (it re-reads the file: ~3 ms on every rerun otherwise)."""
    return inspect.getsource(function)


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
    explain(home.STORY)
    data = state.data if state.is_2d else "moons"
    key = tuple(sorted({**state.__dict__, "data": data}.items()))
    c1, c2 = st.columns([3, 2])
    with c1:
        chart(_story_figure(data, key, state.seed), key="home_story")
    with c2:
        equation(r"x_0 \;\to\; x_1 \;\to\; \cdots \;\to\; x_T \sim \mathcal{N}(0, I)")
        equation(r"x_T \;\to\; \cdots \;\to\; x_1 \;\to\; x_0")
        explain(f"Data **{data}**, schedule **{F.build_schedule(state).describe()}**. The same story on "
                 "a digit (its reverse needs a trained network: lesson 3):")
        try:
            chart(_digit_row_figure(key, state.seed), key="home_digits")
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
    _init_from_url()  # presenter mode is known before the navigation is placed
    nav = st.navigation(pages, position="top" if presenting() else "sidebar")  # the sidebar is hidden then
    st.session_state["_frame_state"] = render_sidebar()
    bar = None
    if presenting():
        st.html(PRESENT_CSS)
        bar = st.container()
    _start_deck(nav.url_path or "home")
    nav.run()
    _finish_deck(bar)
    show_link()


if __name__ == "__main__":
    # `streamlit run app.py` executes this file as __main__, while pages `import app`: two module objects,
    # and every st.cache_* function above would exist (and cache, and hold models) twice. Run the frame
    # from the imported module, so the home page, the sidebar and the pages share one set of caches.
    import app

    app.main()
