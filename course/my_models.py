"""Use my model: models trained in the training lab, for this session only. The sidebar offers them once a
session has one; `model_for` tells a lesson which checkpoint to load; `try_checkpoint` resolves their keys."""

from __future__ import annotations

import streamlit as st

MODEL_KEY = "frame_model"  # the sidebar's "model" choice: SHIPPED or a session model's key
SHIPPED = "shipped"


def _lab_keeper():
    """Holds a disconnected session's lab for server.disconnectedSessionTTL seconds (course.jobs.LabKeeper)."""
    from course.jobs import default_keeper

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
    from course.jobs import SessionLab

    sid = _session_id()
    return _lab_keeper().adopt(sid) or SessionLab(owner=sid)


def session_lab():
    """This session's training jobs and trained models (course.jobs.SessionLab). A disconnect holds them
    for server.disconnectedSessionTTL seconds (a reconnect finds its job still running); after that the
    session is gone, its jobs stop and its models are freed."""
    _lab_keeper().reap()
    return _session_lab()


def is_session_model(name: str) -> bool:
    from course.jobs import KEY_PREFIX

    return str(name).startswith(KEY_PREFIX)


def model_sidebar(sb) -> None:
    """The sidebar's "model" choice, shown only once this session has trained a model."""
    from course.jobs import model_label

    models = session_lab().models
    keys = models.keys()
    st.session_state["_frame_models_shown"] = tuple(keys)  # the lab reruns the app when this is stale
    if not keys:
        st.session_state.pop(MODEL_KEY, None)
        return
    if st.session_state.get(MODEL_KEY) not in [SHIPPED, *keys]:  # removed in the lab
        st.session_state[MODEL_KEY] = SHIPPED
    sb.selectbox(
        "model",
        [SHIPPED, *keys],
        key=MODEL_KEY,
        format_func=lambda k: "shipped models" if k == SHIPPED else f"my model {model_label(models.get(k))}",
        help="Use a model you trained in the training lab instead of the shipped one, wherever a lesson "
        "uses a shipped 2D model trained on the same data.",
    )
    chosen = models.get(st.session_state[MODEL_KEY]) if st.session_state[MODEL_KEY] != SHIPPED else None
    if chosen is not None:
        data = chosen.recipe.get("data")
        sb.caption(
            f"Lessons whose 2D model is trained on **{data}** use yours; the others keep the shipped ones."
            if data != "own"
            else "No lesson uses a model of your own points: download it from the lab."
        )


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
