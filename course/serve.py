"""`python -m course.serve [streamlit run options]`: the course's server, with its heavy imports done first.

`streamlit run app.py` imports torch, plotly, the lessons and the shipped weights on the first visit,
which then waits seconds longer than every later one. Here they are imported (and the shared, read-only
resources of course.resources loaded) before the server starts listening, so a student who opens a page
the moment the server is up gets it as fast as the next student does. `make run`, the tests' and the
benchmarks' servers and the container all start the app this way.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSON_MODULES = ("home", "forward", "schedule_lab", "reverse_chain", "elbo_lesson", "score", "conditional",
                  "inpainting", "training_lab", "exports")


def warm(verbose: bool = True) -> float:
    """Import what every page imports and load the shared resources; returns the seconds it took."""
    import importlib
    import logging

    start = time.perf_counter()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import plotly.graph_objects as go
    import plotly.io as pio
    import torch

    import app  # noqa: F401  (the frame: course/, lessons.frame)
    from course import resources
    from toy_models.checkpoints import CheckpointError
    from toy_models.cli import TEST_RECIPES
    from toy_models.recipes import RECIPES

    for name in LESSON_MODULES:
        importlib.import_module(f"lessons.{name}")
    import pandas  # noqa: F401  (st.table and st.dataframe convert through it, on a page's first view)
    import pyarrow  # noqa: F401
    pio.to_json(go.Figure(go.Scatter(x=[0.0], y=[0.0])))  # plotly builds its validators on first use
    with torch.no_grad():  # the first convolution and matmul set up their kernels
        torch.nn.functional.conv2d(torch.zeros(1, 1, 28, 28), torch.zeros(4, 1, 3, 3))
        torch.zeros(64, 64) @ torch.zeros(64, 64)
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "missing ScriptRunContext": outside a page the caches are the server's all the same
    try:
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
    finally:
        quiet.setLevel(level)
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
