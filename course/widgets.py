"""Widgets whose value lives in a URL parameter, so every view is a link: a bad value in a hand-edited URL
is repaired (clamped, snapped or reset) with a notice where the widget is; the parsing is in lessons.settings."""

from __future__ import annotations

import streamlit as st

from lessons import settings


def from_url(name: str, key: str, parse) -> None:
    """Once per widget life: its session value from URL parameter `name` (parse(raw, notes)), each repair
    shown as a warning where the widget is. Later runs keep the widget's own state."""
    if key not in st.session_state:
        notes: list[str] = []
        st.session_state[key] = parse(st.query_params.get(name), notes)
        for note in notes:
            st.warning(note, icon=":material/link_off:")


def to_url(name: str, value) -> None:
    """Write a widget's value to the URL (only when it changed: every write is a message to the browser)."""
    text = settings.format_param(value)
    if st.query_params.get(name) != text:
        st.query_params[name] = text


def url_int(name: str, label: str, lo: int, hi: int, default: int, *, key: str, widget=None, **kw) -> int:
    """A slider whose value lives in the URL parameter `name` (clamped to [lo, hi], snapped to the slider's
    step, reset if invalid)."""
    step = int(kw.get("step") or 1)
    from_url(name, key, lambda raw, notes: settings.parse_int_param(name, raw, lo, hi, default, notes, step))
    st.session_state[key] = min(max(int(st.session_state[key]), lo), hi)  # T may have shrunk
    if lo == hi:  # a slider needs a range; T = 1 with t in 0..0 cannot happen, but be safe
        st.caption(f"{label}: {lo}")
        value = lo
    else:
        value = (widget or st.slider)(label, lo, hi, key=key, **kw)
    to_url(name, int(value))
    return int(value)


def url_float(
    name: str,
    label: str,
    lo: float,
    hi: float,
    default: float,
    step: float | None = None,
    *,
    key: str,
    widget=None,
    **kw,
) -> float:
    """A float slider (or widget=st.number_input) whose value lives in the URL parameter `name`:
    clamped to [lo, hi] and snapped to the step grid, reset if not a number."""
    from_url(name, key, lambda raw, notes: settings.parse_float_param(name, raw, lo, hi, default, notes, step))
    st.session_state[key] = min(max(float(st.session_state[key]), lo), hi)
    value = (widget or st.slider)(label, float(lo), float(hi), step=step, key=key, **kw)
    to_url(name, float(value))
    return float(value)


def url_choice(name: str, label: str, options, default, *, key: str, widget=None, **kw):
    """A selectbox (or widget=st.radio / st.select_slider) whose choice lives in the URL parameter `name`
    (its text, str(option)); an unknown one resets to the default with a notice."""
    options = list(options)
    from_url(name, key, lambda raw, notes: settings.parse_choice_param(name, raw, options, default, notes))
    if st.session_state[key] not in options:  # the options changed under it
        st.session_state[key] = default
    value = (widget or st.selectbox)(label, options, key=key, **kw)
    to_url(name, value)
    return value


def url_bool(name: str, label: str, default: bool = False, *, key: str, widget=None, **kw) -> bool:
    """A toggle (or widget=st.checkbox) whose state lives in the URL parameter `name` as 1 or 0."""
    from_url(name, key, lambda raw, notes: settings.parse_bool_param(name, raw, default, notes))
    value = (widget or st.toggle)(label, key=key, **kw)
    to_url(name, bool(value))
    return bool(value)


def url_multi(
    name: str, label: str, options, default, *, key: str, max_selections: int | None = None, widget=None, **kw
) -> list:
    """A multiselect whose choices live in the URL parameter `name`, comma-separated."""
    options = list(options)
    from_url(
        name, key, lambda raw, notes: settings.parse_multi_param(name, raw, options, default, notes, max_selections)
    )
    st.session_state[key] = [v for v in st.session_state[key] if v in options]
    value = (widget or st.multiselect)(label, options, key=key, max_selections=max_selections, **kw)
    to_url(name, list(value))
    return list(value)
