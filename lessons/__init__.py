"""The teaching layer: one module per lesson (narrative, computations returning arrays, figure
builders) plus the shared frame. Never imports streamlit, so every figure is unit-testable.

    frame.py         the lesson catalogue (LESSONS), sidebar state <-> URL query parameters
    figures.py       one colour per role (COLORS), common plotly helpers, payload measurement
    home.py          the home page's data -> noise -> data story
    forward.py       lesson 1: forward noising, Markov chain vs closed form, KL to N(0, I)
    schedule_lab.py  lesson 2: linear / cosine / sigmoid schedules compared
"""
