"""The smallest page the course's page benchmarks could measure: a slider in a fragment that redraws a line of
text and a 3-point plotly figure. `benchmarks.bench_pages.floor_lines()` times it like a lesson page, so its
figures are what this machine, Streamlit and Chromium cost before a page does any work of its own."""

import streamlit as st

st.set_page_config(page_title="floor", page_icon="🌫️")


@st.fragment
def moved():
    k = st.slider("t (time step)", 0, 1000, 500)
    st.markdown(f"t = **{k}**")
    st.plotly_chart(
        {
            "data": [{"type": "scatter", "mode": "markers", "x": [0, 1, 2], "y": [k, 1, 2]}],
            "layout": {"height": 300, "xaxis": {"title": {"text": "x"}}, "yaxis": {"title": {"text": "y"}}},
        },
        key="floor",
    )


moved()
