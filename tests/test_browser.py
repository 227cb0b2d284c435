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

import shutil
import sys
from pathlib import Path

import pytest
from _lab import KERNEL_IDLE, chromium, jupyter_lab, lab_settings
from conftest import skip_or_fail_without_node

from azml_nb import _notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_publish_and_score.ipynb"
ARTIFACTS = ROOT / "out" / "browser"
DOCS_COUNTS = ["1", "1", "2", "2", "0", "2", "0", "1"]

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def browser():
    skip_or_fail_without_node()             # `azml-nb lab` starts the offline stack
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`azml-nb lab` on a copy of notebook 02; yields (url, token, log path); stops Lab and the stack."""
    tmp = tmp_path_factory.mktemp("lab")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    shutil.copy(_notebooks.NOTEBOOKS_DIR / NOTEBOOK, notebooks / NOTEBOOK)

    def command(port: int, lab_options: list[str]) -> list[str]:
        return [sys.executable, "-m", "azml_nb.cli", "lab", "--no-browser", "--port", str(port),
                "--notebooks", str(notebooks), "--", *lab_options]

    with jupyter_lab(command, tmp=tmp, settings=lab_settings(tmp / "settings"),
                     keep_env=["AZML_NB_NODE_MODULES"]) as running:
        yield running


def test_notebook02_score_form_in_chromium(browser, lab):
    url, token, log_path = lab
    page = browser.new_page(viewport={"width": 1800, "height": 1000})
    try:
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_function(KERNEL_IDLE, timeout=90_000)
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
        page.wait_for_function(KERNEL_IDLE, timeout=90_000)
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
