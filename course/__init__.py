"""The course's Streamlit frame, shared by every page; pages import what they use from here:

    resources   data, MNIST, shipped checkpoints, the exact mixture: loaded once per server
    my_models   "use my model": a session's own trained models, held through a dropped connection
    sidebar     the shared sidebar and its URL round trip; frame() for pages
    widgets     url_int, url_float, url_choice, url_bool, url_multi: widgets whose value is in the URL
    present     presenter mode, chart / explain / equation / show_source, download, the copy link

Everything here imports streamlit; the logic it calls lives in lessons/ and toy_models/.
"""

from .my_models import model_for, session_lab
from .present import (
    chart,
    download,
    equation,
    explain,
    finish_deck,
    lazy_section,
    presenting,
    show_link,
    show_source,
    start_deck,
)
from .resources import checkpoint, device, ground_truth_gmm, mnist, points_2d, try_checkpoint
from .sidebar import frame, init_from_url, render_sidebar
from .widgets import url_bool, url_choice, url_float, url_int, url_multi

__all__ = [  # what pages and app.py use
    "chart",
    "checkpoint",
    "device",
    "download",
    "equation",
    "explain",
    "finish_deck",
    "frame",
    "ground_truth_gmm",
    "init_from_url",
    "lazy_section",
    "mnist",
    "model_for",
    "points_2d",
    "presenting",
    "render_sidebar",
    "session_lab",
    "show_link",
    "show_source",
    "start_deck",
    "try_checkpoint",
    "url_bool",
    "url_choice",
    "url_float",
    "url_int",
    "url_multi",
]
