"""The notation sheet (lessons.notation) in a dialog, opened by a button: `notation_button(st.sidebar)`.
The sheet is sent to the browser only when the button is clicked, so it costs a page nothing until then."""

from __future__ import annotations

import streamlit as st

from lessons import notation as N

LABEL = "Notation sheet"
KEY = "notation_open"


@st.dialog(LABEL, width="large")
def _sheet() -> None:
    st.caption("Every symbol the course displays, with the lesson where it first appears. One meaning each.")
    st.markdown(N.table_markdown())


def notation_button(container) -> None:
    """A button in `container` (e.g. st.sidebar) that opens the notation sheet in a dialog."""
    if container.button(
        LABEL,
        key=KEY,
        icon=":material/menu_book:",
        help="Every symbol of the course: its name, its values or shape, where it first appears.",
    ):
        _sheet()
