"""Helpers shared by the test modules (AppTest pages and shipped weights)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def open_page(page: str | None = None, *, script: str = APP, timeout: float = 60, **params) -> AppTest:
    """A fresh AppTest session with URL query parameters `params`, run once; fails on any exception shown.

    script: the file AppTest runs (app.py, with its shared frame, by default; or a page file run alone).
    page: with app.py, the page to switch to ("pages/<stem>.py"; None = the home page).
    AppTest's default timeout (3 s) is too short for a torch + plotly page: pass one that fits the page.
    """
    at = AppTest.from_file(script, default_timeout=timeout)
    at.query_params.update({k: str(v) for k, v in params.items()})
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shipped_or_skip(name: str):
    """The shipped checkpoint `name` (a checkpoints.Loaded), or skip the test with the reason."""
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(name)
    except CheckpointError as e:
        pytest.skip(f"weights/{name} not available: {str(e).splitlines()[0]}")


def open_every_section(at: AppTest) -> AppTest:
    """Open every keyed expander of the page (course.present.lazy_section, show_source) and rerun: what a
    student gets by clicking each one."""
    for box in at.main.expander:
        if box.key:
            at.session_state[box.key] = True
    return at.run()
