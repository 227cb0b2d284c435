"""A key typed into a CredentialsForm in a real JupyterLab is not in the saved notebook.

JupyterLab (throw-away config, settings with "save widget state" on) serves a notebook with
a ``CredentialsForm`` and, as the control, a plain ``ipywidgets.Password``. Debian's Chromium,
driven by Playwright, types the same secret into both, presses Enter, and saves. The saved
file must hold the secret exactly once: in the plain Password's model, never in the form's.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests

CHROMIUM = Path(os.environ.get("AZML_NB_CHROMIUM", "/usr/bin/chromium"))
SECRET = "typed-in-chromium-" + secrets.token_hex(6)
_KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _missing(what: str) -> None:
    message = f"{what} is missing: run `make setup` (Debian: sudo apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


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
    settings = tmp_path / "settings"
    for plugin, values in {"@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                           "checkForUpdates": False}}.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZML_")}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    log_path = tmp_path / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--notebook-dir={notebooks}", f"--IdentityProvider.token={token}", "--allow-root",
             "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, token, path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)      # the kernel it started, if still there
        except ProcessLookupError:
            pass


def test_a_key_typed_in_the_browser_is_not_saved_with_the_notebook(lab):
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        _missing("Debian's Chromium")
    from playwright.sync_api import sync_playwright

    url, token, path = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(f"{url}/lab/tree/{path.name}?token={token}")
            page.wait_for_function(_KERNEL_IDLE, timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            fields = page.locator("input[type=password]")       # API key, subscription, storage, plain
            fields.nth(3).wait_for(timeout=60_000)
            page.wait_for_function(_KERNEL_IDLE, timeout=60_000)
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
        finally:
            browser.close()
    saved = json.loads(path.read_text())
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    holders = [(m["model_name"], m["state"].get("description")) for m in state.values()
               if SECRET in json.dumps(m)]
    assert holders == [("PasswordModel", "plain")]               # the control proves the scan can fail
    assert path.read_text().count(SECRET) == 1
    assert any(m["state"].get("description") == "API key" for m in state.values())
