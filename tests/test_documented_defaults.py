"""What the docs say a parameter's default is, the code's default is.

Every registered node's docstrings (its own, its module's, its parameters') and docs/tuning.md
are searched for ``name = number`` / ``name=number`` statements about the node's parameters;
each must state the parameter's actual default.
"""
import inspect
import re
import sys
from pathlib import Path

import pytest

from nodegraph.registry import load_registry

REPO = Path(__file__).resolve().parents[1]
REGISTRY = load_registry(include_plugins=False)


def _claims(text: str, name: str) -> list[float]:
    pattern = rf"(?<![\w.]){re.escape(name)}\s*=\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w.])"
    return [float(v) for v in re.findall(pattern, text)]


def _numeric_params(spec):
    return {n: p.default for n, p in spec.params.items()
            if isinstance(p.default, (int, float)) and not isinstance(p.default, bool)}


@pytest.mark.parametrize("spec", list(REGISTRY), ids=lambda s: s.id)
def test_docstrings_state_the_real_defaults(spec):
    module = sys.modules[spec.func.__module__]
    texts = [spec.doc, inspect.getdoc(module) or ""] + [p.doc for p in spec.params.values()]
    for name, default in _numeric_params(spec).items():
        for text in texts:
            for claimed in _claims(text, name):
                assert claimed == pytest.approx(default), f"{spec.id}: docs say {name} = {claimed}, code {default}"


def test_tuning_notes_state_the_real_defaults():
    text = (REPO / "docs" / "tuning.md").read_text()
    # The numbered step that says what was chosen (it may wrap over several lines).
    chosen = [step for step in re.split(r"\n(?=\d+\. )", text) if "chose" in step]
    checked = 0
    for spec in REGISTRY:
        if not spec.id.startswith("hzsr."):
            continue
        for name, default in _numeric_params(spec).items():
            for claimed in (c for line in chosen for c in _claims(line, name)):
                assert claimed == pytest.approx(default), f"docs/tuning.md: {name} = {claimed}, {spec.id} has {default}"
                checked += 1
    assert checked > 0  # the notes do state defaults; the test must see them
