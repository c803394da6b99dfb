"""`python -m course.serve [streamlit run options]`: the course's server, with its heavy imports done first.

`streamlit run app.py` imports torch, plotly, the lessons and the shipped weights on the first visit,
which then waits seconds longer than every later one. Here they are imported (and the shared, read-only
resources of course.resources loaded) before the server starts listening, so a student who opens a page
the moment the server is up gets it as fast as the next student does. `make run`, the tests' and the
benchmarks' servers and the container all start the app this way.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSON_MODULES = (
    "home",
    "forward",
    "schedule_lab",
    "reverse_chain",
    "elbo_lesson",
    "score",
    "conditional",
    "inpainting",
    "training_lab",
    "notation",
)


@contextlib.contextmanager
def _quiet(logger: str):
    """Only errors from `logger` while the block runs."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def warm(verbose: bool = True) -> float:
    """Import what every page imports and load the shared resources; returns the seconds it took."""
    import importlib

    start = time.perf_counter()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import plotly.graph_objects as go
    import plotly.io as pio
    import streamlit  # noqa: F401  (first: it sets its loggers' levels as it creates them)
    import torch

    # Outside a running server, each @st.cache_data decorator checks its parameters against a stand-in
    # storage and says so ("No runtime found, using MemoryCacheStorageManager"); the storage a cache really
    # uses is chosen at its first call, inside the server. So the warning says nothing to a user: keep it out.
    with _quiet("streamlit.runtime.caching.cache_data_api"):
        import course  # noqa: F401  (the frame: course/, lessons.settings)
        from course import resources

        for name in LESSON_MODULES:
            importlib.import_module(f"lessons.{name}")
        from course import exports, jobs  # noqa: F401
    import pandas  # noqa: F401  (st.table and st.dataframe convert through it, on a page's first view)
    import pyarrow  # noqa: F401

    from toy_models.checkpoints import CheckpointError
    from toy_models.cli import TEST_RECIPES
    from toy_models.recipes import RECIPES

    pio.to_json(go.Figure(go.Scatter(x=[0.0], y=[0.0])))  # plotly builds its validators on first use
    with torch.no_grad():  # the first convolution and matmul set up their kernels
        torch.nn.functional.conv2d(torch.zeros(1, 1, 28, 28), torch.zeros(4, 1, 3, 3))
        torch.zeros(64, 64) @ torch.zeros(64, 64)
    # "missing ScriptRunContext": outside a page the caches are the server's all the same
    with _quiet("streamlit.runtime.scriptrunner_utils.script_run_context"):
        resources.device()
        resources.ground_truth_gmm()
        try:
            resources.mnist()
        except ImportError:
            pass
        for name in RECIPES:
            if name not in TEST_RECIPES:
                try:
                    resources.checkpoint(name)
                except CheckpointError:
                    pass  # the page that needs it says how to rebuild it
    seconds = time.perf_counter() - start
    if verbose:
        print(f"course.serve: imports and shared resources ready in {seconds:.1f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> None:
    warm()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *(sys.argv[1:] if argv is None else argv)]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
