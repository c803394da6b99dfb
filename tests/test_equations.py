"""Every display equation of every lesson (its EQ_* constants) renders with the KaTeX that streamlit ships
and fits a lesson column; equations built at run time are checked in the browser test (.katex-error)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from tests.helpers import MAX_EQUATION_EM, katex_report

ROOT = Path(__file__).resolve().parents[1]


def lesson_equations() -> dict[str, str]:
    """{"module.NAME[i]": latex} for every EQ_* constant (a string, or a list / tuple of strings) of lessons/."""
    out = {}
    for info in pkgutil.iter_modules([str(ROOT / "lessons")]):
        module = importlib.import_module(f"lessons.{info.name}")
        for name, value in vars(module).items():
            if not name.startswith("EQ_") or name.endswith("_NOTE"):
                continue
            items = [value] if isinstance(value, str) else list(value)
            for i, latex in enumerate(items):
                assert isinstance(latex, str), f"{info.name}.{name}[{i}] is not a LaTeX string"
                out[f"{info.name}.{name}" + (f"[{i}]" if len(items) > 1 else "")] = latex
    return out


def test_every_lesson_equation_renders_and_fits(tmp_path):
    eqs = lesson_equations()
    assert len(eqs) >= 25  # every lesson has some: a rename that hid them all would fail here
    report = dict(zip(eqs, katex_report(list(eqs.values()), tmp_path)))
    errors = {k: r["error"] for k, r in report.items() if not r["ok"]}
    assert errors == {}
    wide = {k: round(r["em"], 1) for k, r in report.items() if r["em"] > MAX_EQUATION_EM}
    assert wide == {}


def test_the_check_fails_on_a_run_on_control_word_and_on_a_long_line(tmp_path):
    bad, long = katex_report([r"x \qquadL_0", " + ".join(["x_{t-1}"] * 30)], tmp_path)
    assert not bad["ok"] and long["ok"] and long["em"] > MAX_EQUATION_EM
