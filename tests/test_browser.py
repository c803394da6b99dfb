"""Real-browser test: a fresh `streamlit run app.py`, every page opened by its deep link FIRST.

On a freshly started server, a deep link could be served in streamlit's legacy pages/-folder mode
(no shared frame) until someone opened `/` (ARCHITECTURE.md); the page scripts now live in views/, and
each page is still checked on its own fresh
server: the shared sidebar must be there, no error shown; then a slider moves and the figure must
change. Screenshots go to artifacts/screenshots/.

To cover a new page, add one line to PAGES: (url path, label of the slider to move).
Skipped with a reason where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# Seconds to wait for a page run; raise it on a crowded machine (2 shared cores).
TIMEOUT_S = float(os.environ.get("BROWSER_TIMEOUT_S", "240"))
SHOTS = ROOT / "artifacts" / "screenshots"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# (url path, aria-label of the slider to move). One line per page.
PAGES = [
    ("forward", "t (time step)"),
    ("schedule_lab", "t (time step)"),
    ("reverse_chain", "reverse step t (T → 0)"),
    ("elbo", "which data point x₀"),
    ("score", "t (time step)"),
    ("conditional", "guidance scale w"),
    ("inpainting", "known x₁"),
    ("training_lab", "preview t (the noise level the network sees)"),
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: no real-browser test"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent():
    """In the child: get SIGTERM when the test process dies, so no server outlives a killed run (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    """`python -m course.serve` (`streamlit run app.py`, imports first) on a free port, headless, no usage
    stats; stopped on exit.

    `extra_args` are more `streamlit run` options (e.g. "--server.disconnectedSessionTTL", "5");
    `app` is the script to run (a test may serve a small app of its own).
    """

    def __init__(self, *extra_args: str, app: Path = ROOT / "app.py"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        # the course's own app starts as `make run` does (course.serve: imports first); a test's small app plainly
        start = ["course.serve"] if app == ROOT / "app.py" else ["streamlit", "run", str(app)]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                *start,
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                *extra_args,
            ],
            cwd=app.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.up_at = self._wait_up()

    def _wait_up(self, timeout: float = TIMEOUT_S) -> float:
        end = time.time() + timeout
        while time.time() < end:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return time.time()
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit did not come up in {timeout:.0f} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)


def new_page(browser):
    """A page with generous timeouts: on 2 shared cores a first page load can take tens of seconds.

    page.outside lists every URL the page asked for that is not on this machine: the course must work with no
    network (a material-icon favicon, for one, made the browser fetch it from fonts.gstatic.com)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.set_default_navigation_timeout(TIMEOUT_S * 1000)
    page.outside = []
    page.on("request", lambda r: page.outside.append(r.url) if not is_local(r.url) else None)
    return page


def is_local(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost")


@contextlib.contextmanager
def first_visit(url: str, context_options: dict | None = None):
    """(server, page): a fresh server and a headless Chromium page opened at `url` (path and query) as the
    first visit, waited until the script is idle. context_options: for a browser context of its own (e.g.
    clipboard permissions)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Server() as server, sync_api.sync_playwright() as pw:
        browser = launch(pw)
        if context_options:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options).new_page()
            page.set_default_timeout(TIMEOUT_S * 1000)
        else:
            page = new_page(browser)
        page.goto(f"{server.url}/{url}", wait_until="domcontentloaded")
        wait_idle(page)
        yield server, page
        browser.close()


def wait_idle(page, timeout_ms: float | None = None):
    """Wait until streamlit has finished running the script (no 'running' status widget)."""
    timeout_ms = timeout_ms or TIMEOUT_S * 1000
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && document.querySelectorAll('.js-plotly-plot').length > 0",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(300)


def figure_signature(page) -> str:
    """A string that changes when any plotly figure's data or title changes (x too: a histogram has no y)."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => "
        "JSON.stringify((g.data || []).map(d => ['x', 'y', 'z'].map(k => "
        "d[k] === undefined ? null : JSON.stringify(d[k]).slice(0, 160))))"  # arrays may arrive base64-packed
        " + ((g.layout && g.layout.title && g.layout.title.text) || '')).join('|')"
    )


def wait_changed(page, before: str, timeout_s: float = 90.0) -> str:
    """Poll until the figures differ from `before` and the script is idle; return the new signature."""
    end = time.time() + timeout_s
    while time.time() < end:
        page.wait_for_timeout(100)
        now = figure_signature(page)
        if now != before:
            wait_idle(page)
            return figure_signature(page)
    return before


def move_slider(page, label: str, presses: int = 5, key: str = "ArrowRight") -> None:
    slider = page.get_by_role("slider", name=label).first
    slider.focus()
    for _ in range(presses):
        slider.press(key)


def assert_frame_ok(page, path: str) -> None:
    """The shared frame is there (not legacy pages-folder mode) and no exception is shown."""
    assert page.get_by_text("Course settings").count() > 0, f"/{path}: the shared sidebar is missing (legacy mode?)"
    assert page.locator('[data-testid="stException"]').count() == 0, f"/{path}: an exception is shown"
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Forward noising" in nav, f"/{path}: navigation shows file names, not lesson titles: {nav!r}"


# Every equation shown: no KaTeX error, and no display equation wider than its column (it would be cut off).
EQUATION_PROBLEMS_JS = """() => {
  const out = [];
  document.querySelectorAll('.katex-error').forEach(e => out.push('KaTeX error: ' + (e.title || e.textContent)));
  document.querySelectorAll('.katex-display').forEach(d => {
    const k = d.querySelector('.katex');
    if (k && d.offsetParent !== null && k.scrollWidth > d.clientWidth + 2)
      out.push('equation wider than its column (' + k.scrollWidth + ' > ' + d.clientWidth + ' px): '
               + (d.querySelector('annotation') || d).textContent.slice(0, 80));
  });
  return out;
}"""
# Every figure drawn: its legend box does not cover its title, and its title is not cut at the top or right edge.
LEGEND_OVER_TITLE_JS = """() => {
  const out = [];
  const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  document.querySelectorAll('.js-plotly-plot').forEach(g => {
    if (g.offsetParent === null) return;
    const title = g.querySelector('.gtitle'), legend = g.querySelector('g.legend .bg');
    if (!title || !title.textContent.trim()) return;
    const box = title.getBoundingClientRect(), name = title.textContent.slice(0, 80);
    const edge = g.getBoundingClientRect();
    if (box.top < edge.top - 1) out.push('title cut at the top edge: ' + name);
    if (box.right > edge.right + 1) out.push('title cut at the right edge: ' + name);
    if (legend && hit(box, legend.getBoundingClientRect())) out.push('legend over the title: ' + name);
  });
  return out;
}"""


def assert_layout_ok(page, path: str) -> None:
    """At 1280 and 1920 px wide (a laptop, a projector): every equation renders and fits its column, and no
    figure's legend covers its title; a screenshot of each width goes to artifacts/screenshots/."""
    for width in (1280, 1920):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(500)  # plotly relayouts on resize
        # streamlit scrolls its main block, not the document: a viewport as tall as the page shows all of it
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": width, "height": min(max(height, 1000), 12000)})
        page.wait_for_timeout(800)
        problems = page.evaluate(EQUATION_PROBLEMS_JS) + page.evaluate(LEGEND_OVER_TITLE_JS)
        page.screenshot(path=str(SHOTS / f"{path}_{width}.png"), full_page=True)
        assert problems == [], f"/{path} at {width} px: {problems}"
    page.set_viewport_size({"width": 1400, "height": 1000})


@pytest.mark.parametrize("path,slider", PAGES)
def test_deep_link_first_visit(path, slider):
    with first_visit(f"{path}?T=500&seed=1") as (server, page):
        assert_frame_ok(page, path)
        assert "T=500" in page.url and "seed=1" in page.url, page.url
        page.screenshot(path=str(SHOTS / f"{path}_first.png"), full_page=False)
        assert_layout_ok(page, path)
        before = figure_signature(page)
        move_slider(page, slider)
        after = wait_changed(page, before)
        assert after != before, f"/{path}: moving {slider!r} did not change any figure"
        assert_frame_ok(page, path)
        page.screenshot(path=str(SHOTS / f"{path}_after_slider.png"), full_page=True)
        assert page.outside == [], f"/{path} reached outside this machine: {sorted(set(page.outside))}"


def test_home_and_links_share_settings():
    """Open / with settings in the URL, follow the first lesson link: the settings survive."""
    with first_visit("?data=rings&schedule=cosine&T=200") as (server, page):
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(SHOTS / "home.png"), full_page=True)
        page.locator('[data-testid="stSidebarNav"] a', has_text="Forward noising").first.click()
        page.wait_for_url("**/forward**")
        wait_idle(page)
        assert_frame_ok(page, "forward")
        page.wait_for_function("() => window.location.search.includes('schedule=cosine')")
        assert "data=rings" in page.url and "T=200" in page.url, page.url
        # the notation sheet opens from a lesson's sidebar, as a dialog with the symbol table
        page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Notation sheet").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("bits/dim").first.wait_for()
        assert dialog.locator("table").count() == 1 and dialog.locator(".katex-error").count() == 0
        page.screenshot(path=str(SHOTS / "notation_sheet.png"), full_page=False)


def test_copy_link_button_copies_the_current_view():
    """The forward lesson's t lives in a fragment: moving it updates the address bar but not the full run's
    link box. The sidebar's copy button must copy the address bar, new t included."""
    clipboard = {"permissions": ["clipboard-read", "clipboard-write"]}
    with first_visit("forward?T=500&t=40", clipboard) as (server, page):
        before = figure_signature(page)
        move_slider(page, "t (time step)")  # 40 -> 45, a fragment rerun
        wait_changed(page, before)
        page.wait_for_function("() => /[?&]t=45(&|$)/.test(window.location.search)")
        assert "t=40" in page.locator(".st-key-page_link").inner_text()  # the box lags
        button = page.frame_locator('[data-testid="stSidebar"] iframe').get_by_role(
            "button", name="Copy the link of this view"
        )
        page.bring_to_front()  # the clipboard API needs a focused document
        button.click()
        # the copy is asynchronous: on a loaded machine the clipboard can still be empty right after the click
        page.wait_for_function("async () => (await navigator.clipboard.readText()) !== ''", timeout=20_000)
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied == page.url and "t=45" in copied and "T=500" in copied, (copied, page.url)


def visible_charts(page) -> int:
    """How many plotly figures are on screen (display: none or detached ones do not count)."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => g.offsetParent !== null).length"
    )


def test_presenter_mode():
    """/forward?present=1 opened first on a fresh server: no sidebar, one figure; moving t (a fragment rerun on
    this page) redraws that one figure; "next figure" shows another; "leave presenter mode" brings all back."""
    with first_visit("forward?present=1&T=500") as (server, page):
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Course settings").count() > 0, "the shared frame is missing (legacy mode?)"
        assert not page.locator('[data-testid="stSidebar"]').first.is_visible(), "the sidebar shows in presenter mode"
        assert visible_charts(page) == 1
        assert page.get_by_text("figure 1 of 8").count() == 1
        assert page.get_by_role("link", name="Schedule lab").count() > 0, "no page navigation in presenter mode"
        assert "slide=1" in page.url and "present=1" in page.url, page.url
        page.screenshot(path=str(SHOTS / "presenter_forward_1.png"), full_page=False)
        first = figure_signature(page)
        move_slider(page, "t (time step)")
        moved = wait_changed(page, first)
        assert moved != first, "moving t did not redraw the figure in presenter mode"
        assert visible_charts(page) == 1, "a fragment rerun drew more than one figure"
        page.get_by_role("button", name="next figure").click()
        page.wait_for_function("() => window.location.search.includes('slide=2')")
        wait_idle(page)
        assert page.get_by_text("figure 2 of 8").count() == 1
        assert visible_charts(page) == 1 and figure_signature(page) != moved, "next did not show another figure"
        page.screenshot(path=str(SHOTS / "presenter_forward_2.png"), full_page=False)
        page.get_by_role("button", name="leave presenter mode").click()
        page.wait_for_function("() => !window.location.search.includes('present=')")
        wait_idle(page)
        assert page.locator('[data-testid="stSidebar"]').first.is_visible()
        # 8 figures, less the animation in its closed "Play it" section (drawn only once opened)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 7")
        link = page.locator(".st-key-page_link").inner_text().strip()
        assert link.startswith(f"{server.url}/forward?") and "T=500" in link and "present" not in link, link


def test_forward_play_section_animates_t_in_the_browser():
    """The forward lesson's "Play it" section, opened by the student, sends the animation; its play button
    steps t in the browser alone: the figure's title (t = …) changes with no rerun of the script."""
    with first_visit("forward?T=500") as (server, page):
        before = page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")
        page.get_by_text("Play it: t from 0 to T in your browser").click()
        page.wait_for_function(
            f"() => document.querySelectorAll('.js-plotly-plot').length > {before}", timeout=TIMEOUT_S * 1000
        )
        wait_idle(page)
        anim = page.locator(".st-key-fig_anim .js-plotly-plot").first
        anim.scroll_into_view_if_needed()
        title = "() => document.querySelector('.st-key-fig_anim .js-plotly-plot').layout.title.text"
        first = page.evaluate(title)
        anim.get_by_text("▶ play").click()
        page.wait_for_function(f"() => ({title})() !== {first!r}", timeout=20_000)
        assert page.locator('[data-testid="stStatusWidget"]').count() == 0, "playing reran the script"
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(SHOTS / "forward_play.png"), full_page=False)
