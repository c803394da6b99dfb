"""Helpers shared by the test modules (AppTest pages and shipped weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def open_page(page: str | None = None, *, script: str = APP, timeout: float = 60, **params) -> AppTest:
    """A fresh AppTest session with URL query parameters `params`, run once; fails on any exception shown.

    script: the file AppTest runs (app.py, with its shared frame, by default; or a page file run alone).
    page: with app.py, the page to switch to ("views/<stem>.py"; None = the home page).
    AppTest's default timeout (3 s) is too short for a torch + plotly page: pass one that fits the page.
    """
    at = AppTest.from_file(script, default_timeout=timeout)
    at.query_params.update({k: str(v) for k, v in params.items()})
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shipped_or_skip(name: str):
    """The shipped checkpoint `name` (a checkpoints.Loaded), or skip the test with the reason."""
    from toy_models.checkpoints import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(name)
    except CheckpointError as e:
        pytest.skip(f"weights/{name} not available: {str(e).splitlines()[0]}")


def open_every_section(at: AppTest) -> AppTest:
    """Open every keyed expander of the page (course.present.lazy_section, show_source) and rerun: what a
    student gets by clicking each one."""
    for box in at.main.expander:
        if box.key:
            at.session_state[box.key] = True
    return at.run()


# --- equations: rendered with the KaTeX that streamlit ships, as the browser does --------------------------------
_KATEX_JS = r"""
import fs from 'fs';
const k = (await import(process.argv[2])).default;
const SP = {'\\qquad': 2, '\\quad': 1, '\\,': 0.17, '\\:': 0.22, '\\;': 0.28, '\\!': -0.17, '\\ ': 0.33};
const S = 0.7;  // script size
// a rough width in em of a KaTeX parse tree: ~0.55 em a symbol, fractions as wide as their wider part
function w(n) {
  if (n == null) return 0;
  if (Array.isArray(n)) return n.reduce((a, x) => a + w(x), 0);
  switch (n.type) {
    case 'mathord': case 'textord': return 0.55 * ((n.text || 'x').startsWith('\\') ? 1 : [...(n.text || 'x')].length);
    case 'atom': return n.family === 'bin' ? 1.0 : n.family === 'rel' ? 1.1 : n.family === 'punct' ? 0.45 : 0.55;
    case 'op': return n.symbol ? 1.1 : n.body ? w(n.body) + 0.2 : 0.5 * (n.name || '').length + 0.2;
    case 'genfrac': return Math.max(w(n.numer), w(n.denom)) * (n.size === 'text' ? S : 1) + 0.25;
    case 'supsub': {
      const b = w(n.base), sc = S * Math.max(w(n.sup), w(n.sub));
      const limits = n.base && (n.base.type === 'op' && n.base.limits || n.base.type === 'horizBrace');
      return limits ? Math.max(b, sc) : b + sc;
    }
    case 'horizBrace': case 'accent': return w(n.base);
    case 'sqrt': return w(n.body) + 0.9;
    case 'leftright': return w(n.body) + 0.9;
    case 'spacing': return SP[n.text] ?? 0.33;
    case 'kern': return 0;
    case 'array': return Math.max(...n.body.map(row => row.reduce((a, c) => a + w(c), 0)));
    case 'text': return 0.5 * JSON.stringify(n.body).split('"text":"').length;
    case 'delimsizing': return 0.6;
    default: return n.body !== undefined ? w(n.body) : 0.55;
  }
}
for (const e of JSON.parse(fs.readFileSync(0, 'utf8'))) {
  try {
    k.renderToString(e, {throwOnError: true, displayMode: true});
    console.log(JSON.stringify({ok: true, em: w(k.__parse(e, {displayMode: true}))}));
  } catch (err) { console.log(JSON.stringify({ok: false, error: err.message})); }
}
"""
MAX_EQUATION_EM = 30  # ~580 px at the display size of 1.21 x 16 px: room to spare in a ~700 px column


def katex_report(latex: list[str], tmp_path) -> list[dict]:
    """For each LaTeX string: {"ok": True, "em": rough display width in em} or {"ok": False, "error": message},
    from KaTeX's own parser (throwOnError) run under node. Skips the test where node or the bundle is missing."""
    import json
    import shutil
    import subprocess

    import streamlit

    node = shutil.which("node")
    bundle = sorted((Path(streamlit.__file__).parent / "static" / "static" / "js").glob("katex.*.js"))
    if node is None or not bundle:
        pytest.skip("needs node and streamlit's KaTeX bundle")
    script = Path(tmp_path) / "katex_check.mjs"
    script.write_text(_KATEX_JS)
    out = subprocess.run(
        [node, str(script), bundle[0].as_uri()],
        input=json.dumps(list(latex)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    results = [json.loads(line) for line in out]
    assert len(results) == len(latex)
    return results
