"""The load test (benchmarks/loadtest.py): its protocol against a real server, a small configuration
of the whole run, the training hook on a small app of its own, and its arithmetic."""

from __future__ import annotations

import math
import os
import textwrap

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from benchmarks import loadtest as LT


# --- arithmetic (fast) ---------------------------------------------------------------------------
def test_percentile_interpolates():
    xs = [4.0, 1.0, 3.0, 2.0]
    assert LT.percentile(xs, 0) == 1.0 and LT.percentile(xs, 100) == 4.0
    assert LT.percentile(xs, 50) == pytest.approx(2.5)
    assert LT.percentile(xs, 95) == pytest.approx(3.85)
    assert math.isnan(LT.percentile([], 50))


def test_rss_counts_this_process_and_a_child():
    import subprocess
    import sys

    alone = LT.rss_mb(os.getpid())
    assert 10 < alone < 100_000
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(200_000_000); time.sleep(30)"])
    try:
        for _ in range(100):  # until the child has touched its 200 MB
            if LT.rss_mb(os.getpid()) - alone > 150:
                break
            import time

            time.sleep(0.1)
        assert LT.rss_mb(os.getpid()) - alone > 150  # the child's memory is counted with the parent's
    finally:
        child.kill()
        child.wait()
    assert math.isnan(LT.rss_mb(2**22 + 12345))  # no such process


def _scenario(name, reruns, errors=(), rss=None, sessions=25):
    sc = LT.Scenario(name, sessions, reruns=list(reruns), errors=list(errors))
    sc.rss = rss or {"start": 400.0, "peak": 500.0, "end": 410.0}
    return sc


def test_targets_are_judged_from_the_figures():
    report = LT.Report(
        LT.Config(),
        70.0,
        {
            "idle": _scenario("idle", [0.4, 0.5, 0.6], sessions=1),
            "many": _scenario("many", [0.5] * 90 + [2.5] * 10),
            "open_close": _scenario("oc", [], rss={"start": 400.0, "peak": 900.0, "end": 520.0}, sessions=100),
            "training": _scenario("tr", [0.9, 1.0, 1.1], sessions=1),
        },
        (1.0, 1.0, 1.0),
        10.0,
    )
    judged = [(t, met) for t, _, met in report.targets()]
    assert judged[0] == ("25 sessions: rerun p50 <= 1 s", True)
    assert judged[1] == ("25 sessions: rerun p95 <= 2 s", False)  # p95 of 90 x 0.5 s and 10 x 2.5 s is 2.5 s
    assert judged[2] == ("25 sessions: 0 errors", True)
    assert judged[3] == ("100 opened + closed: memory back within 100 MB", False)  # +120 MB
    assert judged[4][1] is True  # 1.0 s is 2.0x the idle 0.5 s: just met
    text = "\n".join(report.lines())
    assert "MISSED  25 sessions: rerun p95 <= 2 s: 2.50 s" in text
    assert "+120 MB" in text and "= 2.0x" in text


# --- against a real server (slow) -----------------------------------------------------------------
@pytest.mark.slow
def test_slider_moves_rerun_the_fragment_and_change_figures():
    """The protocol is truly exercised: the move reruns only the slider's fragment, the server
    writes the new t into the URL, and the figures change; the same value again changes none."""
    from tests.test_browser import Server

    with Server() as server, LT.Session(server.url, timeout=240) as s:
        first = s.open(LT.FORWARD_PAGE)
        assert first.errors == [] and first.status == ForwardMsg.FINISHED_SUCCESSFULLY
        assert first.figures >= 5 and first.changed == 0  # nothing to compare with yet
        slider = s.widget(LT.T_SLIDER)
        assert slider.fragment_id, "the t slider should live in an st.fragment"
        assert (slider.element.min, slider.element.max) == (0, 1000)

        moved = s.set_slider(LT.T_SLIDER, 700)
        assert moved.errors == [] and moved.status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        assert 0 < moved.seconds < 240
        assert moved.figures < first.figures  # the fragment only: the page's other sections are not re-sent
        assert moved.changed == moved.figures == 2, moved  # x_t with its marginals, and the KL curve's marker
        assert "t=700" in s.query.split("&")

        again = s.set_slider(LT.T_SLIDER, 700)
        assert again.errors == [] and again.finished and again.changed == 0

        with pytest.raises(LookupError, match="no slider labelled 'nope'"):
            s.widget("nope")


@pytest.mark.slow
def test_small_configuration_runs_clean():
    """3 sessions x 3 moves and 5 sessions opened + closed against a fresh server: no errors,
    every rerun finished and changed a figure, latencies positive and finite, memory released."""
    cfg = LT.Config(sessions=3, moves=3, think=0.2, open_close=5, open_concurrency=5, session_ttl=2, progress=False)
    report = LT.run_loadtest(cfg)
    idle, many, oc = (report.scenarios[k] for k in ("idle", "many", "open_close"))
    for sc, opens, reruns in ((idle, 1, 3), (many, 3, 9), (oc, 5, 0)):
        assert sc.errors == [] and sc.unfinished == 0, (sc.name, sc.errors)
        assert len(sc.opens) == opens and len(sc.reruns) == reruns == sc.moves, sc
        assert all(0 < x < LT.RUN_TIMEOUT_S and math.isfinite(x) for x in sc.opens + sc.reruns), sc
        assert sc.unchanged == 0, f"{sc.name}: a slider move changed no figure"
        assert sc.rss["start"] > 50 and sc.rss["peak"] >= sc.rss["start"] - 1
    assert report.fresh_rss < idle.rss["peak"]  # the first page run loads torch, plotly, the data
    assert "active sessions after release: 0" in oc.notes
    assert oc.rss["end"] - oc.rss["start"] < LT.TARGET_MEMORY_MB
    text = "\n".join(report.lines())
    assert "3 sessions moving t" in text and "disconnectedSessionTTL = 2 s" in text
    assert [t for t, _, _ in report.targets()][:3] == [
        "3 sessions: rerun p50 <= 1 s",
        "3 sessions: rerun p95 <= 2 s",
        "3 sessions: 0 errors",
    ]


TRAINING_PAGE = """
import threading, time
import streamlit as st

@st.cache_resource
def job():
    return {"steps": 0, "running": False, "lock": threading.Lock()}

def work(j):
    while j["running"]:
        with j["lock"]:
            j["steps"] += 1
        time.sleep(0.05)

j = job()
if st.button("Train") and not j["running"]:
    j["running"] = True
    threading.Thread(target=work, args=(j,), daemon=True).start()

@st.fragment(run_every=0.3)
def progress():
    st.metric("steps", j["steps"])
    if j["running"] and st.button("Stop"):
        j["running"] = False

progress()
"""


@pytest.mark.slow
def test_training_hook_clicks_train_and_keeps_auto_reruns_going(tmp_path):
    """The --with-training hook on a small app of its own: open /training_lab, click the button
    labelled "Train", answer the fragment's auto-reruns (as the frontend does), click "Stop"."""
    from tests.test_browser import Server

    (tmp_path / "pages").mkdir()
    (tmp_path / "home.py").write_text("import streamlit as st\nst.title('home')\n")
    (tmp_path / "pages" / "training_lab.py").write_text(textwrap.dedent(TRAINING_PAGE))
    with Server(app=tmp_path / "home.py") as server, LT.Session(server.url, timeout=120) as s:
        opened = s.open(LT.TRAINING_PAGE)
        assert opened.errors == [] and opened.finished
        assert ("button", LT.STOP_BUTTON) not in s.widgets
        clicked = s.click(LT.TRAIN_BUTTON)
        assert clicked.errors == [] and clicked.finished
        assert list(s.auto_reruns.values()) == [pytest.approx(0.3)]
        errors: list[str] = []
        sent = sum(s.pump(0.2, errors) for _ in range(10))  # short calls: the 0.3 s timer must run across them
        assert errors == [] and sent >= 4
        assert ("button", LT.STOP_BUTTON) in s.widgets  # the job runs: the fragment shows Stop
        stopped = s.click(LT.STOP_BUTTON)
        assert stopped.errors == [] and stopped.finished

        missing = LT.Session(server.url, timeout=60)
        try:
            run = missing.open("no_such_page")
            assert any("page not found" in e for e in run.errors), run.errors
        finally:
            missing.close()
