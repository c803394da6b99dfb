"""Page speed and payload figures (medians of repeated runs), printed by `python -m benchmarks`.

- first paint: seconds from the server answering /_stcore/health to the first plotly figure
  drawn, for a deep link on a freshly started server (`python -m course.serve`, as `make run`),
  in a Chromium started before the server (skipped without it); the median of FIRST_PAINTS fresh
  servers and browsers, since one load on 2 shared cores varies by half a second;
- slider -> updated figure: milliseconds from a key press on the t slider to a changed figure in
  the browser, median over repeats;
- payload: the largest serialized plotly figure of one rerun, and the sum over a page (AppTest);
- the floor: the same two figures for `benchmarks/floor_app.py`, a slider that redraws one line of text
  and a 3-point figure, so a reader can tell what the machine, Streamlit and Chromium cost before a
  page does any work (on a slow machine the floor alone can exceed a target).

Targets: first paint <= 3 s, slider median <= 250 ms, no figure > 1 MB.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ("forward", "views/forward.py", "t (time step)"),
    ("schedule_lab", "views/schedule_lab.py", "t (time step)"),
    ("reverse_chain", "views/reverse_chain.py", "reverse step t (T → 0)"),
]
REPEATS = 7
FIRST_PAINTS = 3


def payload_lines() -> list[str]:
    from streamlit.testing.v1 import AppTest

    from tests.helpers import open_every_section

    lines = []
    for name, path, _ in [("home", None, None)] + PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        if path:
            at.switch_page(path)
        at.run()
        sizes = [len(el.proto.spec.encode()) for el in at.get("plotly_chart")]
        line = (
            f"views/{name}: {len(sizes)} figures, largest {max(sizes) / 1e3:.0f} kB, "
            f"all {sum(sizes) / 1e3:.0f} kB per full rerun"
        )
        open_every_section(at)  # the figures a student gets by a click count too
        opened = [len(el.proto.spec.encode()) for el in at.get("plotly_chart")]
        if len(opened) > len(sizes):
            line += (
                f"; every section opened: {len(opened)} figures, largest {max(opened) / 1e3:.0f} kB, "
                f"all {sum(opened) / 1e3:.0f} kB"
            )
        lines.append(line + " (target: each < 1000 kB)")
    return lines


def browser_lines() -> list[str]:
    from tests.test_browser import CHROMIUM, Server, launch, new_page

    if not Path(CHROMIUM).exists():
        return [f"browser figures skipped: {CHROMIUM} is missing"]
    from playwright.sync_api import sync_playwright

    lines = floor_lines()
    for name, _, slider_label in PAGES:
        paints, times = [], []
        for run in range(FIRST_PAINTS):
            with sync_playwright() as pw:
                browser = launch(pw)  # before the server: starting Chromium is not the page's first paint
                page = new_page(browser)
                with Server() as server:
                    paints.append(first_paint(page, server, name))
                    if run == 0:
                        times = slider_times(page, slider_label)
                browser.close()
        lines.append(
            f"views/{name}: first paint median {statistics.median(paints):.2f} s after the server is up "
            f"(runs {', '.join(f'{p:.2f}' for p in paints)}; target <= 3 s); slider -> updated figure "
            f"median {1e3 * statistics.median(times):.0f} ms over {REPEATS} (min {1e3 * min(times):.0f}, "
            f"max {1e3 * max(times):.0f}; target <= 250 ms)"
        )
    return lines


def first_paint(page, server, path: str = "") -> float:
    """Seconds from the server being up to the first drawn figure of /path on a fresh page; then waits until
    the script is idle."""
    from tests.test_browser import wait_idle

    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=120_000, polling=20
    )
    seconds = time.time() - server.up_at
    wait_idle(page)
    return seconds


def slider_times(page, slider_label: str, signature=None) -> list[float]:
    """Seconds from a key press on the slider to a change of signature(page) (default: any figure's data),
    REPEATS times (after one warm-up move)."""
    from tests.test_browser import figure_signature, wait_idle

    signature = signature or figure_signature
    slider = page.get_by_role("slider", name=slider_label).first
    times = []
    for i in range(REPEATS + 1):
        before = signature(page)
        slider.focus()
        t0 = time.perf_counter()
        slider.press("ArrowRight")
        while signature(page) == before and time.perf_counter() - t0 < 20:
            page.wait_for_timeout(5)
        if i:  # the first move warms the caches
            times.append(time.perf_counter() - t0)
        wait_idle(page)
    return times


def floor_lines() -> list[str]:
    """First paint and slider figures of benchmarks/floor_app.py: what any page pays on this machine."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import Server, launch, new_page

    def text(page):
        return page.inner_text('[data-testid="stMarkdown"]')

    paints, to_text, to_figure = [], [], []
    for run in range(FIRST_PAINTS):
        with sync_playwright() as pw:
            browser = launch(pw)
            page = new_page(browser)
            with Server(app=ROOT / "benchmarks" / "floor_app.py") as server:
                paints.append(first_paint(page, server))
                if run == 0:
                    to_text = slider_times(page, "t (time step)", text)
                    to_figure = slider_times(page, "t (time step)")
            browser.close()
    return [
        f"floor (benchmarks/floor_app.py: a slider, a line of text, a 3-point figure): first paint median "
        f"{statistics.median(paints):.2f} s (runs {', '.join(f'{p:.2f}' for p in paints)}); slider -> "
        f"changed text median {1e3 * statistics.median(to_text):.0f} ms, -> changed figure median "
        f"{1e3 * statistics.median(to_figure):.0f} ms (over {REPEATS}): no page here can beat these"
    ]


def run() -> list[str]:
    lines = payload_lines()
    try:
        lines += browser_lines()
    except Exception as e:  # a benchmark must still report the rest
        lines.append(f"browser figures failed: {type(e).__name__}: {e}")
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
    print(json.dumps({"ok": True}))
