"""Presenter mode, exports and the code behind a figure: every page draws its figures through `chart`, its
prose through `explain`, its equations through `equation` and its code through `show_source`, so that
`?present=1` can show one figure at a time and hide the rest; `download` builds an export on click."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import streamlit as st

from lessons import settings

from .widgets import to_url

PRESENT = "frame_present"  # the sidebar's presenter-mode toggle (URL: present=1)

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
# Every page: a figure out of view is not styled, laid out or painted (content-visibility: auto). A slider
# move redraws a few figures, and on a long page the browser otherwise re-styled every figure's thousands of
# SVG nodes each time: on the forward lesson that was half of a move (bench_pages times it).
FRAME_CSS = """<style>
[data-testid="stMain"] [data-testid="stPlotlyChart"] { content-visibility: auto; contain-intrinsic-size: auto 450px; }
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
    (course.exports.png_config: `<key>.png` at 2x). where: a column or container (default: the page).
    In presenter mode only the current slide's figure is drawn (larger); the others return None."""
    from course.exports import png_config

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
    (where or st).download_button(
        label,
        data=make,
        file_name=file_name,
        key=key,
        help=help,
        on_click="ignore",
        mime=MIME.get(Path(file_name).suffix, "application/octet-stream"),
        icon=":material/download:",
    )


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


def start_deck(page: str) -> None:
    """Before a full page run: a fresh list of chart keys; the page's slide from the URL on first sight."""
    d = _deck()
    d["page"], d["keys"] = page, []
    if presenting() and page not in d["slides"]:
        notes = st.session_state.setdefault("_frame_notices", [])
        d["slides"][page] = settings.parse_int_param("slide", st.query_params.get("slide"), 1, 10**6, 1, notes)


def finish_deck(bar) -> None:
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
            f"slide={i} is outside [1, {n}] (this page has {n} figures); showing figure {n}."
        )
        d["slides"][d["page"]] = n
        st.rerun()
    to_url("present", True)
    to_url("slide", i)
    c = bar.columns([2, 3, 2, 2], vertical_alignment="center")
    c[0].button(
        "previous figure",
        key="present_prev",
        icon=":material/arrow_back:",
        on_click=_step,
        args=(-1,),
        disabled=i <= 1,
        width="stretch",
    )
    c[1].markdown(f"**figure {i} of {n}**" if n else "**this page has no figures**")
    c[2].button(
        "next figure",
        key="present_next",
        icon=":material/arrow_forward:",
        on_click=_step,
        args=(1,),
        disabled=i >= n,
        width="stretch",
    )
    c[3].button(
        "leave presenter mode", key="present_exit", icon=":material/close:", on_click=_stop_presenting, width="stretch"
    )


def page_link() -> str:
    """The full URL of the current view: st.context.url (scheme, host, page path) + every query parameter."""
    from urllib.parse import urlencode

    base = st.context.url or f"/{_deck()['page']}"
    query = urlencode(st.query_params.to_dict())
    return f"{base}?{query}" if query else base


# A button that copies the address bar's URL when clicked. The link box below is drawn by the full run; a
# slider inside a section (an st.fragment) updates only the address bar, so the box can lag behind it and
# this button cannot. Static HTML (no user input goes in): the iframe is same-origin, with clipboard-write.
COPY_LINK_HTML = """<style>body { margin: 0; }</style><button id="copy"
 style="font: 14px 'Source Sans Pro', sans-serif; padding: 5px 12px; cursor: pointer;
 border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 8px; background: #fff; color: rgb(49, 51, 63);">
 Copy the link of this view</button>
<script>
const b = document.getElementById("copy");
b.onclick = async () => {
  const url = window.parent.location.href;
  try { await navigator.clipboard.writeText(url); b.textContent = "Copied"; }
  catch (e) { window.prompt("Copy this link:", url); }
  window.copiedLink = url;
  setTimeout(() => { b.textContent = "Copy the link of this view"; }, 1500);
};
</script>"""


def show_link() -> None:
    """The copy-link controls, in the sidebar: a button that copies the address bar's URL (always current),
    and the link as of this run as inline code (readable; not st.code, whose highlighter the browser would
    load on every page, a visible share of its first paint)."""
    st.sidebar.iframe(COPY_LINK_HTML, height=42, alt="Copy the link of this view")
    st.sidebar.caption(
        "The link as of the last full run (a slider inside a section updates only the "
        "address bar and the button above):"
    )
    st.sidebar.container(key="page_link").markdown(f"`{page_link()}`")


def lazy_section(label: str, *, key: str, icon: str | None = None, params: tuple[str, ...] = ()):
    """(container, shown): a section the page computes and sends only once the student opens it, as an
    expander (on_change="rerun"), for the heavy extras at the foot of a page, whose figures would otherwise
    be drawn before the page's first one shows. params: the URL parameters of the section's widgets; a link
    that sets one opens the section, so it reproduces the view. In presenter mode it is a plain container,
    always shown: its figures are slides."""
    if presenting():
        return st.container(), True
    linked = any(name in st.query_params for name in params)
    box = st.expander(label, expanded=linked, key=key, icon=icon, on_change="rerun")
    return box, bool(box.open)


def show_source(*functions, label: str | None = None) -> None:
    """An expander with the real source (inspect.getsource) of the functions a figure runs
    (left out in presenter mode).

    The code is sent only once the expander is open (on_change="rerun"): a closed expander's code was
    still highlighted by the browser, a visible share of a page's first paint."""
    if presenting():
        return
    label = label or f"Show the code that runs: {', '.join(f.__name__ for f in functions)}"
    with st.expander(label, icon=":material/code:", key=source_key(functions, label), on_change="rerun") as box:
        if box.open:
            for f in functions:
                st.code(_source(f), language="python")


def source_key(functions, label: str) -> str:
    """The widget key of show_source's expander (its open state): the functions and the label."""
    return "source_" + "_".join(f"{f.__module__}.{f.__qualname__}" for f in functions) + f"_{label}"


@functools.lru_cache(maxsize=256)
def _source(function) -> str:
    """inspect.getsource, read once per function (it re-reads the file on every call)."""
    return inspect.getsource(function)
