"""The training lab page under AppTest: it renders with defaults; Train starts a background job that keeps
training across reruns and stops on Stop; a bad uploaded CSV shows its message and changes nothing; a trained
model becomes the sidebar's "my model" choice, and the reverse chain lesson then runs and names it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.runtime.caching import clear_session_resource_cache
from streamlit.testing.v1 import AppTest

from course import jobs as J

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "views/training_lab.py"
TIMEOUT = 60  # AppTest's default 3 s is too short for a torch + plotly page
SESSION_ID = "test session id"  # AppTest's (streamlit.testing.v1.local_script_runner)
WAIT_S = 180  # the first optimiser of a process imports torch._dynamo: seconds on a loaded machine

pytestmark = pytest.mark.slow


def disconnect() -> None:
    """What streamlit does when a browser session disconnects: clear its session caches (on_release runs,
    and the lab is held for the reconnect grace period)."""
    clear_session_resource_cache(SESSION_ID)


def end_session() -> None:
    """The session is gone for good (its grace period is over). Every AppTest uses the same session id, so
    this also gives each test a fresh session."""
    disconnect()
    J.default_keeper().end(SESSION_ID)


@pytest.fixture(autouse=True)
def fresh_session():
    end_session()
    yield
    end_session()
    for job in J.default_queue().jobs():
        job.stop()
        job.wait(30)


def open_lab(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({k: str(v) for k, v in params.items()})
    at.switch_page(PAGE)
    return run(at)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def progress(at: AppTest) -> tuple[str, int] | None:
    """(status, step) from the job's progress bar, or None when there is no job."""
    bars = at.get("progress")
    if not bars:
        return None
    m = re.search(r"\*\*(\w+)\*\* — step ([\d,]+) of", bars[0].proto.text)
    return m.group(1), int(m.group(2).replace(",", ""))


def rerun_until(at: AppTest, cond, timeout=WAIT_S):
    end = time.time() + timeout
    while time.time() < end:
        run(at)
        p = progress(at)
        if p is not None and cond(*p):
            return p
        time.sleep(0.5)
    raise AssertionError(f"timed out; last progress {progress(at)}")


def test_renders_with_defaults():
    at = open_lab()
    assert at.title[0].value == "8 · Training lab"
    assert at.selectbox(key="lab_data").value == "moons" and at.select_slider(key="lab_steps").value == 1000
    assert at.button(key="lab_train").disabled is False
    assert len(at.get("plotly_chart")) == 1  # the preview of what it will be trained on
    assert any("linear" in c.value and "T=1000" in c.value.replace(" ", "") for c in at.caption), [
        c.value for c in at.caption
    ]
    assert any("No training yet" in i.value for i in at.info)
    assert progress(at) is None


def test_train_keeps_running_across_reruns_and_stop_stops_it():
    at = open_lab()
    at.select_slider(key="lab_steps").set_value(10000)
    at.select_slider(key="lab_every").set_value(1000)
    run(at)
    at.button(key="lab_train").click()
    run(at)
    assert at.button(key="lab_train").disabled  # one job per session at a time
    _, first = rerun_until(at, lambda status, step: status == "running" and step > 0)
    time.sleep(1.5)
    status, second = rerun_until(at, lambda status, step: step > first)
    assert status == "running" and second > first
    assert len(at.get("plotly_chart")) >= 3  # preview, loss curve, loss per t
    at.button(key="lab_stop").click()
    run(at)
    status, stopped_at = rerun_until(at, lambda status, step: status == "stopped")
    time.sleep(1.0)
    run(at)
    assert progress(at) == ("stopped", stopped_at)  # no more steps after Stop
    assert not at.button(key="lab_train").disabled


def test_bad_csv_shows_its_message_and_applies_nothing():
    at = open_lab()
    at.selectbox(key="lab_data").set_value("own")
    run(at)
    assert any("No points yet" in w.value for w in at.warning)
    assert at.button(key="lab_train").disabled
    at.file_uploader(key="lab_csv").set_value(("bad.csv", b"x,y\n1,2\n3,oops\n", "text/csv"))
    run(at)
    errors = [e.value for e in at.error]
    assert any("bad.csv" in e and "not numbers" in e and "Nothing was changed" in e for e in errors), errors
    assert at.button(key="lab_train").disabled and "lab_points" not in at.session_state
    good = "\n".join(f"{i},{(i * 7) % 5}" for i in range(30)).encode()
    at.file_uploader(key="lab_csv").set_value(("good.csv", good, "text/csv"))
    run(at)
    assert not at.error
    assert any("30 points (uploaded: good.csv)" in c.value for c in at.caption)
    assert at.button(key="lab_train").disabled is False
    assert len(at.get("plotly_chart")) == 2  # the drawing grid and the preview of the uploaded points


def test_my_model_appears_and_the_reverse_chain_names_it():
    at = open_lab()
    assert not at.sidebar.selectbox or all(s.key != "frame_model" for s in at.sidebar.selectbox)
    at.select_slider(key="lab_steps").set_value(100)
    at.select_slider(key="lab_every").set_value(50)
    run(at)
    at.button(key="lab_train").click()
    run(at)
    rerun_until(at, lambda status, step: status == "done")
    run(at)
    choice = at.selectbox(key="frame_model")
    mine = [o for o in choice.options if o.startswith("my model ")]  # options as shown (format_func)
    assert len(mine) == 1 and "mine:" in mine[0] and "moons, 100 steps" in mine[0], choice.options
    assert any("Download checkpoint" in b.label for b in at.get("download_button"))
    assert len(at.get("plotly_chart")) >= 4  # preview, loss, loss per t, snapshots
    key = re.search(r"mine:[0-9a-f]+", mine[0]).group(0)
    at.selectbox(key="frame_model").set_value(key)
    at.switch_page("views/reverse_chain.py")
    run(at)
    captions = " ".join(c.value for c in at.caption)
    assert f"recipe **{key}**" in captions, captions
    assert "100 training steps" in captions
    at.selectbox(key="frame_data").set_value("rings")  # a model of moons is not used for rings
    run(at)
    assert key not in " ".join(c.value for c in at.caption)
    at.switch_page(PAGE)
    run(at)
    at.button(key=f"lab_rm_{key}").click()
    run(at)
    assert all(s.key != "frame_model" for s in at.sidebar.selectbox)  # removed: no more "model" choice


def test_a_disconnect_keeps_the_job_and_ending_the_session_stops_it_and_frees_its_models(monkeypatch):
    labs = []
    submit = J.SessionLab.submit
    monkeypatch.setattr(J.SessionLab, "submit", lambda self, job: (labs.append(self), submit(self, job))[1])
    at = open_lab()
    at.select_slider(key="lab_steps").set_value(100)
    at.select_slider(key="lab_every").set_value(50)
    run(at)
    at.button(key="lab_train").click()
    run(at)
    rerun_until(at, lambda status, step: status == "done")
    at.select_slider(key="lab_steps").set_value(10000)
    run(at)
    at.button(key="lab_train").click()
    run(at)
    rerun_until(at, lambda status, step: status == "running" and step > 0)
    lab = labs[-1]
    assert labs == [lab, lab]  # both jobs went to this session's one lab
    running, done = lab.jobs[-1], lab.jobs[0]
    assert len(lab.models) == 1 and not running.finished
    disconnect()  # a network blip: the job trains on, and the reconnected tab finds it
    time.sleep(1.0)
    assert not running.finished and J.default_keeper().held() == 1
    run(at)
    assert J.default_keeper().held() == 0 and len(lab.models) == 1
    assert progress(at)[0] == "running" and not lab.released
    end_session()  # gone for good
    assert running.wait(30) and running.view().status == "stopped"
    assert len(lab.models) == 0 and lab.released  # the models are freed with the session
    assert done.key not in lab.models and running.key not in lab.models
    run(at)  # the same browser tab again = a new session: an empty lab
    assert progress(at) is None and all(s.key != "frame_model" for s in at.sidebar.selectbox)


def test_hybrid_objective_says_what_hybrid_means_with_fixed_variances():
    """Choosing the hybrid objective shows its weights on the sidebar's schedule, computed (default: small)."""
    from lessons.elbo_lesson import hybrid_weights
    from lessons.settings import FrameState, build_schedule

    at = open_lab(lab_objective="hybrid")
    shown = [c.value for c in at.caption if 'What "hybrid" means here' in c.value]
    assert shown, "the hybrid note is not shown"
    _, w = hybrid_weights(build_schedule(FrameState()))
    assert f"to {w.max():.3g}" in shown[0] and "a small reweighting of L_simple" in shown[0]
