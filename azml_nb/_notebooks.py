"""Run the workshop notebooks headless: parameters, execution, HTML and pictures.

Used by ``make demo`` (:mod:`azml_nb.demo`), ``azml-nb lab`` and the notebook tests. The
notebooks live in the repository's ``notebooks/`` folder; each has a first code cell tagged
``parameters`` whose defaults point at the offline stack. :func:`execute` runs one with
nbclient, optionally inserting a cell of overriding values after that cell (the way
papermill does), and with extra environment variables for the kernel (``AZML_*``).

>>> nb = execute(notebook_paths()[0], parameters={"bitsize": 4})     # doctest: +SKIP
>>> html = to_html(nb)                                                # doctest: +SKIP
"""
from __future__ import annotations

import base64
import copy
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import nbformat

log = logging.getLogger(__name__)

__all__ = ["NOTEBOOKS_DIR", "notebook_paths", "inject_parameters", "execute", "to_html",
           "save_images", "strip_outputs", "stack_env", "lab_command"]

#: the repository's notebooks (the package is installed editable from the repository)
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def notebook_paths(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``) in *folder*, in order."""
    folder = Path(folder) if folder is not None else NOTEBOOKS_DIR
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def stack_env(info: Mapping[str, Any]) -> dict[str, str]:
    """The ``AZML_*`` environment variables for a stack's info dict (``azml-nb serve``'s JSON).

    >>> stack_env({"base_url": "http://127.0.0.1:1", "api_key": "k", "gateway_url": None})
    {'AZML_BASE_URL': 'http://127.0.0.1:1', 'AZML_API_KEY': 'k'}
    """
    return {f"AZML_{key.upper()}": str(value) for key, value in info.items() if value is not None}


def inject_parameters(nb: nbformat.NotebookNode, parameters: Mapping[str, Any]) -> nbformat.NotebookNode:
    """Return a copy of *nb* with a cell setting *parameters* after its ``parameters`` cell.

    Values are written with :func:`repr`, so use str, int, float, bool, None, lists and
    dicts of those. A notebook without a ``parameters`` cell gets the new cell first.
    """
    nb = copy.deepcopy(nb)
    if not parameters:
        return nb
    source = "# Injected parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [INJECTED_TAG]
    cell["id"] = "injected-parameters"
    where = next((i + 1 for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and PARAMETERS_TAG in c.metadata.get("tags", [])), 0)
    nb.cells.insert(where, cell)
    return nb


def execute(path: str | Path, *, parameters: Mapping[str, Any] | None = None,
            env: Mapping[str, str] | None = None, timeout: int = 300,
            kernel_name: str = "python3", cwd: str | Path | None = None) -> nbformat.NotebookNode:
    """Execute one notebook with nbclient and return it with its outputs.

    Parameters
    ----------
    path : path of the ``.ipynb`` file (not modified).
    parameters : values overriding the ``parameters`` cell (see :func:`inject_parameters`).
    env : extra environment variables for the kernel, on top of this process's.
    timeout : seconds any one cell may run.
    cwd : the kernel's working directory; default the notebook's folder.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        A cell raised; the message names the cell and shows the traceback. The exception's
        ``notebook`` attribute holds the notebook as far as it ran.
    """
    from nbclient import NotebookClient
    from traitlets.config import Config

    path = Path(path)
    nb = inject_parameters(nbformat.read(path, as_version=4), parameters or {})
    kernel_env = dict(os.environ)
    kernel_env.pop("MPLBACKEND", None)          # the inline backend, so that plots are outputs
    kernel_env.update(env or {})
    log.info("executing %s", path.name)
    with tempfile.TemporaryDirectory(prefix="azml-kernel-") as sockets:
        # IPC sockets in a private folder rather than TCP on loopback: nothing else on the
        # machine can reach the kernel (and ipykernel prints no plain-text transport warning).
        config = Config()
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(Path(sockets) / "kernel")
        client = NotebookClient(nb, config=config, timeout=timeout, kernel_name=kernel_name,
                                resources={"metadata": {"path": str(cwd or path.parent)}})
        try:
            client.execute(env=kernel_env)
        except Exception as err:
            err.notebook = nb           # the cells run so far, with the failing one's traceback
            raise
    return nb


def to_html(nb: nbformat.NotebookNode) -> str:
    """The executed notebook as one self-contained HTML page (JupyterLab's look)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return body


def save_images(nb: nbformat.NotebookNode, folder: str | Path, stem: str) -> list[Path]:
    """Write every PNG output of *nb* to *folder* as ``{stem}-{n}.png``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                target = folder / f"{stem}-{len(paths) + 1}.png"
                target.write_bytes(base64.b64decode(data))
                paths.append(target)
    return paths


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs and execution counts (notebooks are committed without them)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return nb


def lab_command(root: str | Path, *, port: int = 8888, ip: str = "127.0.0.1", token: str | None = None,
                open_browser: bool = True, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The JupyterLab command line ``azml-nb lab`` and the browser test run.

    *token* None keeps Jupyter's own (random, printed) token. News and update checks are
    off and the extension manager is read-only, so Lab makes no calls beyond loopback.
    """
    import sys

    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(root).resolve()}",
           f"--ServerApp.ip={ip}", f"--ServerApp.port={port}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")       # containers (Binder's is not root; CI's and ours are)
    return cmd + list(extra)
