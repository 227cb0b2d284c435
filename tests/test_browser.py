"""A real browser: `azml-nb lab` serves notebook 02, Debian's Chromium runs it and presses Score.

The test starts ``azml-nb lab`` (what ``make lab`` runs: the offline stack, its details as
``AZML_*`` variables, JupyterLab) on loopback with a token, no browser and throw-away
Jupyter config/runtime/settings folders, on a copy of notebook 02. Playwright drives the
Chromium that Debian packages (``/usr/bin/chromium``; Playwright's own browser download is
never used): it opens the notebook, runs every cell, finds the rendered ScoreForm, clicks
**Score** and reads the docs example's counts from the result table. The screenshot lands in
``out/browser/notebook02.png``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from azml_nb import _notebooks

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("AZML_NB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "02_publish_and_score.ipynb"
ARTIFACTS = ROOT / "out" / "browser"
DOCS_COUNTS = ["1", "1", "2", "2", "0", "2", "0", "1"]

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _missing(what: str, hint: str) -> None:
    message = f"{what} is missing: {hint}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        _missing("Debian's Chromium", "run `make setup` or `sudo apt-get install chromium`")
    if shutil.which("node") is None or not (ROOT / "node_modules" / ".bin" / "azurite-blob").exists():
        _missing("Node.js/Azurite", "run `make setup` (Debian: sudo apt-get install nodejs npm; npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`azml-nb lab` on a copy of notebook 02; yields (url, token); stops Lab and the stack."""
    tmp = tmp_path_factory.mktemp("lab")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    shutil.copy(_notebooks.NOTEBOOKS_DIR / NOTEBOOK, notebooks / NOTEBOOK)
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZML_") or k == "AZML_NB_NODE_MODULES"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), PYTHONUNBUFFERED="1")
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "azml_nb.cli", "lab", "--no-browser", "--port", str(port),
             "--notebooks", str(notebooks), "--", f"--IdentityProvider.token={token}",
             "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"],
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"azml-nb lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"},
                                timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, token, log_path
    finally:
        proc.send_signal(signal.SIGTERM)          # azml-nb lab stops Lab, then the stack
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # anything left in the session it ran in
        except ProcessLookupError:
            pass


_KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""


def test_notebook02_score_form_in_chromium(chromium, lab):
    url, token, log_path = lab
    page = chromium.new_page(viewport={"width": 1800, "height": 1000})
    try:
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_function(_KERNEL_IDLE, timeout=90_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        button = page.locator("button.jupyter-button", has_text="Score")
        button.wait_for(timeout=90_000)
        # the ScoreForm is the VBox right around its button
        form = button.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
        field = form.locator("input[type=text]").first
        assert field.input_value() == "This is a good day"

        button.click()
        table = form.locator(".widget-output table").first
        table.wait_for(timeout=60_000)
        header = [h.strip() for h in table.locator("thead th").all_inner_texts()]
        row = [c.strip() for c in table.locator("tbody tr").first.locator("td").all_inner_texts()]
        assert header[-8:] == [f"Col2_HashingFeature.{i}" for i in range(8)]
        assert row[-8:] == DOCS_COUNTS

        # every cell ran without an error (wait until the kernel has finished them all)
        page.wait_for_function(_KERNEL_IDLE, timeout=90_000)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] pre",
                              has_text="Traceback")
        assert errors.count() == 0, errors.all_inner_texts()

        page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
        form.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(500)                  # let the layout settle for the picture
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook02.png"))
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook02-failure.png"))
        print(log_path.read_text()[-3000:])
        raise
    finally:
        page.close()
