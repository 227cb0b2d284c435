"""The workshop notebooks: stored clean, and each one runs from top to bottom (nbclient).

Notebooks 02-05 run the way ``make lab``, Binder and ``make demo`` run them: the offline
stack (the session's ``local_stack``) is already up and its details reach the kernel as
``AZML_*`` environment variables. Notebook 02 also runs once with no variables at all, the
way a person opening it in a plain Jupyter sees it: it then starts a web-service host of
its own.
"""
from __future__ import annotations

import json
import os
import re

import nbformat
import pytest

from azml_nb import _notebooks

NAMES = [
    "01_feature_hashing.ipynb",
    "02_publish_and_score.ipynb",
    "03_batch_execution.ipynb",
    "04_api_management.ipynb",
    "05_comparing_hashed_features.ipynb",
]
NEEDS_STACK = set(NAMES[1:])
PLOTS = {NAMES[0], NAMES[3], NAMES[4]}
PATHS = {p.name: p for p in _notebooks.notebook_paths()}


def test_the_five_lessons_are_there():
    assert sorted(PATHS) == NAMES


@pytest.mark.parametrize("name", sorted(PATHS))
def test_notebook_is_stored_without_outputs_and_with_a_parameters_cell(name):
    nb = nbformat.read(PATHS[name], as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, name
    assert "parameters" in code[0].metadata.get("tags", []), f"{name}: first code cell is not tagged parameters"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell {cell.get('id')} has outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb.metadata, f"{name}: saved widget state (it can hold typed values)"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), name
    # the parameters cell only assigns values (so injected parameters can override them)
    for line in code[0].source.splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line or re.match(r"^[A-Za-z_]\w* = ", line) or line.startswith(("import ", ")")) \
            or line.endswith(("(", ",")), f"{name}: parameters cell line {line!r}"


def test_inject_parameters_puts_the_values_after_the_parameters_cell():
    nb = nbformat.read(PATHS[NAMES[0]], as_version=4)
    out = _notebooks.inject_parameters(nb, {"bitsize": 4, "example_text": "a b"})
    first = next(i for i, c in enumerate(out.cells) if "parameters" in c.metadata.get("tags", []))
    injected = out.cells[first + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert injected.source.splitlines()[1:] == ["bitsize = 4", "example_text = 'a b'"]
    assert len(out.cells) == len(nb.cells) + 1          # the original is left as it was


def _outputs(nb) -> str:
    """All text the executed notebook showed (streams, text/plain, text/html)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
            else:
                data = out.get("data", {})
                parts.append(data.get("text/plain", ""))
                parts.append(data.get("text/html", ""))
    return "\n".join(parts)


def _errors(nb) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for c in nb.cells for o in c.get("outputs", [])
            if o.output_type == "error"]


@pytest.fixture(scope="module")
def stack_env(request):
    stack = request.getfixturevalue("local_stack")
    return _notebooks.stack_env(stack.info())


# what each lesson must have shown, beyond running without error
EXPECTED = {
    "01_feature_hashing.ipynb": ["This is a good day -> 1 1 2 2 0 2 0 1 (sum 9)"],
    "02_publish_and_score.ipynb": ["1 1 2 2 0 2 0 1"],
    "03_batch_execution.ipynb": ["Finished"],
    "04_api_management.ipynb": ["callCountTotal", "429"],
    "05_comparing_hashed_features.ipynb": ["mismatching cells: 0"],
}


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_against_the_offline_stack(name, request, tmp_path):
    env = request.getfixturevalue("stack_env") if name in NEEDS_STACK else {}
    nb = _notebooks.execute(PATHS[name], env=env, cwd=tmp_path, timeout=240)
    assert not _errors(nb)
    text = _outputs(nb)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name} did not show {expected!r}"
    if name in PLOTS:
        assert json.dumps(nb).count("image/png") >= 1, f"{name} drew no picture"


@pytest.mark.integration
def test_notebook_02_starts_its_own_stack_when_nothing_is_configured(tmp_path, monkeypatch):
    # (notebook 02 needs only the web-service host, so no Node.js either)
    for key in [k for k in os.environ if k.startswith("AZML_") and k != "AZML_NB_NODE_MODULES"]:
        monkeypatch.delenv(key)
    nb = _notebooks.execute(PATHS["02_publish_and_score.ipynb"], cwd=tmp_path, timeout=240)
    assert not _errors(nb)
    assert "1 1 2 2 0 2 0 1" in _outputs(nb)


@pytest.mark.integration
def test_make_demo_writes_executed_notebooks_and_pictures(tmp_path, local_stack, capsys):
    from azml_nb.demo import notebooks_demo

    broken = nbformat.v4.new_notebook()
    broken.cells = [nbformat.v4.new_markdown_cell("# broken"), nbformat.v4.new_code_cell("1 / 0")]
    broken_path = tmp_path / "99_broken.ipynb"
    nbformat.write(broken, broken_path)

    out = tmp_path / "out"
    summary = notebooks_demo(out, stack=local_stack, paths=[PATHS[NAMES[0]], broken_path])
    first, second = summary
    assert first["ok"] and first["error"] is None and first["plots"] >= 1
    page = (out / "notebooks" / "01_feature_hashing.html").read_text(encoding="utf-8")
    assert "1 1 2 2 0 2 0 1" in page and "<html" in page
    assert sorted(p.name for p in (out / "plots").iterdir())[0] == "01_feature_hashing-1.png"
    assert (out / "plots" / "01_feature_hashing-1.png").read_bytes()[:4] == b"\x89PNG"
    assert not second["ok"] and "ZeroDivisionError" in second["error"]
    assert "ZeroDivisionError" in (out / "notebooks" / "99_broken.html").read_text(encoding="utf-8")
    assert "FAILED" in capsys.readouterr().out
