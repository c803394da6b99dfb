"""The notation sheet (lessons.notation, course.notation): valid KaTeX, one row per name, every Greek letter
the course displays listed, and the sidebar button that opens it."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from lessons import notation as N
from lessons import settings

ROOT = Path(__file__).resolve().parents[1]
CONTROL_WORDS = {  # every KaTeX command the sheet may use: a run-on such as \qquadL is not one of them
    "alpha",
    "bar",
    "beta",
    "delta",
    "dots",
    "epsilon",
    "eta",
    "gamma",
    "hat",
    "kappa",
    "lambda",
    "mathcal",
    "mathrm",
    "mid",
    "mu",
    "nabla",
    "log",
    "odot",
    "phi",
    "Sigma",
    "sigma",
    "tau",
    "text",
    "theta",
    "tilde",
    "varnothing",
    "Vert",
}


def test_names_unique_and_lessons_valid():
    names = [s.name for s in N.SYMBOLS]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    assert all(1 <= s.lesson <= len(settings.LESSONS) for s in N.SYMBOLS)
    assert [s.lesson for s in N.SYMBOLS] == sorted(s.lesson for s in N.SYMBOLS)  # in course order


@pytest.mark.parametrize("sym", N.SYMBOLS, ids=lambda s: s.name[:40])
def test_symbol_latex_sanity(sym):
    """Balanced braces, only known control words (so no run-on like \\qquadL), no "|" or "$" (table cells)."""
    s = sym.latex
    depth = 0
    for ch in s:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, s
    assert depth == 0, s
    assert "|" not in s and "$" not in s, s
    words = set(re.findall(r"\\([A-Za-z]+)", s))
    assert words <= CONTROL_WORDS, words - CONTROL_WORDS


def _katex_errors(strings: list[str], tmp_path: Path) -> dict[str, str]:
    """{string: KaTeX's error} for each string that does not render (tests.helpers.katex_report)."""
    from tests.helpers import katex_report

    return {s: r["error"] for s, r in zip(strings, katex_report(strings, tmp_path)) if not r["ok"]}


def test_every_symbol_renders_with_katex(tmp_path):
    assert _katex_errors([s.latex for s in N.SYMBOLS], tmp_path) == {}
    bad = _katex_errors([r"\qquadL", r"x_{t-1"], tmp_path)  # the check can fail
    assert set(bad) == {r"\qquadL", r"x_{t-1"}


def test_table_has_a_row_per_symbol():
    lines = N.table_markdown().splitlines()
    assert len(lines) == 2 + len(N.SYMBOLS)
    for line, s in zip(lines[2:], N.SYMBOLS):
        cells = re.split(r"(?<!\\)\|", line)[1:-1]  # "\|" inside a cell is not a column break
        assert len(cells) == 4, line
        assert cells[0].strip() == f"${s.latex}$" and cells[3].strip() == N.lesson_title(s.lesson)


# --- every Greek letter the course displays is in the sheet ---------------------------------------------------
NOT_NOTATION = {"pi"}  # a number, not a symbol of the course


def _course_text() -> dict[str, str]:
    """The text of every file whose strings the course displays (lessons, pages, the frame), but the sheet."""
    files = [*ROOT.glob("lessons/*.py"), *ROOT.glob("views/*.py"), *ROOT.glob("course/*.py"), ROOT / "app.py"]
    skip = {"notation.py", "__init__.py"}
    return {str(p.relative_to(ROOT)): p.read_text() for p in files if p.name not in skip and not p.name.startswith("_")}


def _greek_name(ch: str) -> str | None:
    """'alpha' for α (and for ᾱ, via its base letter), 'Sigma' for Σ; None for a non-Greek character."""
    base = unicodedata.normalize("NFD", ch)[0]
    name = unicodedata.name(base, "")
    if not name.startswith("GREEK") or "LETTER" not in name and "SYMBOL" not in name:
        return None
    word = name.split()[-1] if "SYMBOL" not in name else name.split()[-2]  # GREEK LUNATE EPSILON SYMBOL
    word = {"FINAL": "SIGMA", "LAMDA": "LAMBDA"}.get(word, word)  # Unicode spells it LAMDA
    return word.capitalize() if "CAPITAL" in name else word.lower()


def _sheet_has(letter: str) -> bool:
    names = {letter, "varepsilon"} if letter == "epsilon" else {letter}
    return any(re.search(rf"\\{n}(?![A-Za-z])", s.latex) for s in N.SYMBOLS for n in names)


def test_every_greek_letter_of_the_course_is_in_the_sheet():
    missing = {}
    for path, text in _course_text().items():
        letters = {_greek_name(ch) for ch in set(text)} - {None}
        letters |= {w for w in re.findall(r"\\([A-Za-z]+)", text) if _greek_name_of_word(w)}
        for letter in letters - NOT_NOTATION:
            if not _sheet_has(letter):
                missing.setdefault(letter, []).append(path)
    assert not missing, f"Greek letters shown by the course but not in lessons/notation.py: {missing}"


GREEK_WORDS = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Pi",
    "Sigma",
    "Upsilon",
    "Phi",
    "Psi",
    "Omega",
}


def _greek_name_of_word(word: str) -> bool:
    return word in GREEK_WORDS


def test_the_greek_check_can_fail():
    assert _greek_name("ᾱ") == "alpha" and _greek_name("Σ") == "Sigma" and _greek_name("x") is None
    assert _greek_name("λ") == "lambda" and _greek_name("ς") == "sigma" and _greek_name("ϵ") == "epsilon"
    assert _sheet_has("alpha") and not _sheet_has("omega")


# --- the button and its dialog ------------------------------------------------------------------------------
def _app():
    import streamlit as st

    from course.notation import notation_button

    notation_button(st.sidebar)


def test_the_sidebar_button_opens_the_sheet():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_app, default_timeout=30)
    at.run()
    assert not at.exception and not any("| symbol |" in m.value for m in at.markdown)  # sent only when asked
    at.sidebar.button(key="notation_open").click().run()
    assert not at.exception
    table = next(m.value for m in at.markdown if m.value.startswith("| symbol |"))
    assert table == N.table_markdown()


@pytest.mark.slow
def test_the_home_page_and_every_lesson_have_the_button_in_their_sidebar():
    """The shared sidebar carries the button, so the sheet opens from the home page and every lesson (clicked
    here on the home page; AppTest does not deliver a sidebar click on a file page, so the browser test clicks
    it on a lesson)."""
    from lessons.settings import LESSONS
    from tests.helpers import open_page

    for lesson in LESSONS:
        assert open_page(lesson.page).sidebar.button(key="notation_open").label == "Notation sheet"
    at = open_page()
    at.sidebar.button(key="notation_open").click().run()
    assert not at.exception
    assert any(m.value == N.table_markdown() for m in at.markdown)
