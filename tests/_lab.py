"""JupyterLab and Debian's Chromium for the browser tests.

:func:`jupyter_lab` runs a Lab command on loopback with throw-away Jupyter folders and
yields its URL once it answers; :func:`chromium` launches Debian's Chromium through
Playwright (never a browser Playwright downloads). A missing Chromium skips the test with an
install hint, and fails it under ``CI=true``.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import pytest
import requests

from conftest import skip_or_fail

CHROMIUM = Path(os.environ.get("AZML_NB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: JavaScript: the current notebook's kernel is connected and idle
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright, closed on exit."""
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        skip_or_fail("Debian's Chromium is missing: run `make setup` (Debian: sudo apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def lab_settings(folder: Path, extra: Mapping[str, dict] | None = None) -> Path:
    """A JupyterLab settings folder with news and update checks off (the network is closed)."""
    plugins = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                               "checkForUpdates": False},
               **(extra or {})}
    for plugin, values in plugins.items():
        target = folder / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    return folder


@contextlib.contextmanager
def jupyter_lab(command: Callable[[int, list[str]], list[str]], *, tmp: Path, settings: Path,
                keep_env: Sequence[str] = (), timeout: float = 120) -> Iterator[tuple[str, str, Path]]:
    """Run a JupyterLab command on loopback; yield ``(url, token, log path)`` once it answers.

    ``command(port, lab_options)`` returns the command line; *lab_options* (a fresh token,
    no port retries, the app exposed to Playwright) must reach JupyterLab. The process gets
    throw-away Jupyter folders under *tmp* and no ``AZML_*`` variables but *keep_env*. On
    exit it is stopped with SIGTERM, and anything left in its process group (kernels) is killed.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZML_") or k in keep_env}
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               PYTHONUNBUFFERED="1")
    log_path = tmp / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command(port, [f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
                           "--LabApp.expose_app_in_browser=True"]),
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"},
                                timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, token, log_path
    finally:
        proc.send_signal(signal.SIGTERM)          # `azml-nb lab` stops Lab, then the stack
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # kernels left in its process group
