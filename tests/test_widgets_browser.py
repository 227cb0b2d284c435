"""A key typed into a CredentialsForm in a real JupyterLab is not in the saved notebook.

JupyterLab (throw-away config, settings with "save widget state" on) serves a notebook with
a ``CredentialsForm`` and, as the control, a plain ``ipywidgets.Password``. Debian's Chromium,
driven by Playwright, types the same secret into both, presses Enter, and saves. The saved
file must hold the secret exactly once: in the plain Password's model, never in the form's.
"""
from __future__ import annotations

import json
import secrets
import sys
import time

import nbformat
import pytest
from _lab import KERNEL_IDLE, chromium, jupyter_lab, lab_settings

SECRET = "typed-in-chromium-" + secrets.token_hex(6)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on loopback serving one notebook; yields (url, token, notebook path)."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    path = notebooks / "secret.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as w\nfrom azml_nb.widgets import CredentialsForm\n"
                                          "form = CredentialsForm(env=False)\nform"),
                nbformat.v4.new_code_cell("plain = w.Password(description='plain')\nplain")]
    nbformat.write(nb, path)
    settings = lab_settings(tmp_path / "settings",
                            {"@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True}})

    def command(port: int, lab_options: list[str]) -> list[str]:
        return [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                f"--notebook-dir={notebooks}", "--allow-root", *lab_options]

    with jupyter_lab(command, tmp=tmp_path, settings=settings) as (url, token, _log):
        yield url, token, path


def test_a_key_typed_in_the_browser_is_not_saved_with_the_notebook(lab):
    url, token, path = lab
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{url}/lab/tree/{path.name}?token={token}")
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        fields = page.locator("input[type=password]")       # API key, subscription, storage, plain
        fields.nth(3).wait_for(timeout=60_000)
        page.wait_for_function(KERNEL_IDLE, timeout=60_000)
        for field in (fields.nth(0), fields.nth(3)):
            field.click()
            field.type(SECRET)
            field.press("Enter")
        page.wait_for_function(
            "() => document.querySelectorAll('input[type=password]')[0].placeholder.includes('set')",
            timeout=30_000)
        assert fields.nth(0).input_value() == ""               # the kernel cleared the form's field
        assert fields.nth(3).input_value() == SECRET           # the plain Password keeps it
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        deadline = time.monotonic() + 30
        while SECRET not in path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    saved = json.loads(path.read_text())
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    holders = [(m["model_name"], m["state"].get("description")) for m in state.values()
               if SECRET in json.dumps(m)]
    assert holders == [("PasswordModel", "plain")]               # the control proves the scan can fail
    assert path.read_text().count(SECRET) == 1
    assert any(m["state"].get("description") == "API key" for m in state.values())
