"""Every python snippet of docs/integrations.md runs as it is (each in a fresh namespace, in an empty folder)."""

import os
import re
import sys
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("MPLBACKEND", "Agg")

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
_BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```python\n(.*?)```", re.S)


def _snippets():
    out = []
    for i, match in enumerate(_BLOCK.finditer(DOC.read_text())):
        marker, code = match.group(1) or "", match.group(2)
        first = next(line for line in code.splitlines() if line.strip())
        out.append(pytest.param(code, id=f"{i}-{first[:40]}",
                                marks=[pytest.mark.skip(reason=marker.strip("<!-> \n"))] if "needs network" in marker
                                else []))
    return out


def test_the_page_has_its_snippets():
    assert len(_snippets()) >= 8


@pytest.mark.parametrize("code", _snippets())
def test_snippet_runs(code, tmp_path, monkeypatch):
    for module in ("lightning", "transformers", "keras", "matplotlib"):
        if re.search(rf"^(import|from) {module}\b", code, re.M):
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frameworks' own deprecation notices
        exec(compile(code, str(DOC), "exec"), {"__name__": "__docs__"})
    if "keras" in sys.modules:  # Keras numbers layer names per process: leave the counter as it was found
        sys.modules["keras"].backend.clear_session()
