"""binder/ agrees with the project's own install files, and binder/start works.

Binder (repo2docker) builds from ``binder/environment.yml`` and ``binder/postBuild`` and runs
``binder/start`` before the notebook server. These tests keep those files consistent with
``pyproject.toml`` and ``package.json`` and run ``binder/start`` with a trivial command.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import skip_or_fail_without_node
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
# the front-end packages Binder needs from the `test` extra; the rest of it is for the suite
NOTEBOOK_EXTRAS = {"jupyterlab", "ipykernel"}


def _key(requirement: str) -> tuple[str, str]:
    req = Requirement(requirement)
    return req.name.lower().replace("_", "-"), str(req.specifier)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((BINDER / "environment.yml").read_text(encoding="utf-8"))


def _conda(environment: dict) -> dict[str, str]:
    """conda entries as {name: version} ('pip' has an empty version)."""
    out = {}
    for entry in environment["dependencies"]:
        if isinstance(entry, str):
            name, _, version = entry.partition("=")
            out[name] = version.lstrip("=")
    return out


def _pip(environment: dict) -> list[str]:
    lists = [e["pip"] for e in environment["dependencies"] if isinstance(e, dict) and "pip" in e]
    assert len(lists) == 1, "environment.yml should have exactly one pip: list"
    return lists[0]


def test_binder_pip_dependencies_match_pyproject(pyproject, environment):
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    wanted = {_key(r) for r in project["dependencies"]}
    wanted |= {_key(r) for r in extras["local"] if not r.startswith("azml_nb")}
    wanted |= {_key(r) for r in extras["test"] if _key(r)[0] in NOTEBOOK_EXTRAS}
    got = [_key(r) for r in _pip(environment)]
    assert len(got) == len(set(got)), f"duplicate pip entries in environment.yml: {got}"
    assert set(got) == wanted, (
        f"binder/environment.yml differs from pyproject.toml: "
        f"missing {sorted(wanted - set(got))}, extra {sorted(set(got) - wanted)}")


def test_binder_python_and_node_versions(pyproject, environment):
    conda = _conda(environment)
    assert "pip" in conda
    python = Version(conda["python"])
    assert python in SpecifierSet(pyproject["project"]["requires-python"])
    assert python.release[:2] == (3, 11)
    node = Version(conda["nodejs"])
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    minimum = int(re.fullmatch(r">=(\d+)", package["engines"]["node"]).group(1))
    # Azurite 3.35.0 is the newest release that supports Node.js 20
    assert minimum <= node.major == 20


def test_binder_installs_the_azurite_that_package_json_pins():
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    pinned = package["dependencies"]["azurite"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"package.json should pin Azurite exactly, not {pinned!r}"
    assert lock["packages"]["node_modules/azurite"]["version"] == pinned
    assert lock["packages"][""]["dependencies"]["azurite"] == pinned
    post_build = (BINDER / "postBuild").read_text(encoding="utf-8")
    commands = [line.strip() for line in post_build.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    # `npm ci` installs exactly the lock file; `npm install azurite@...` could drift from it
    assert any(re.match(r"npm ci\b", c) for c in commands), commands
    assert not any(re.search(r"npm (install|i)\b", c) for c in commands), commands
    assert any(re.search(r"pip install .*-e '?\.\[local\]'?", c) for c in commands), commands


def test_binder_scripts_are_executable_bash():
    for name in ("postBuild", "start"):
        path = BINDER / name
        assert os.access(path, os.X_OK), f"binder/{name} is not executable"
        assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)
    start = (BINDER / "start").read_text(encoding="utf-8")
    assert start.rstrip().endswith('exec "$@"')


# What the exec'd command does: read the AZML_* variables binder/start exported and score
# the docs example through them, as a notebook kernel started by the server would.
_PROBE = r"""
import json, os, sys
import pandas as pd
import azml_nb as az
env = {k: v for k, v in os.environ.items() if k.startswith("AZML_")}
svc = az.WebService.from_env()
out = svc.score(pd.DataFrame({"Col2": ["This is a good day"]}), progress=False)
print(json.dumps({"env": sorted(env), "args": sys.argv[1:],
                  "row": [int(v) for v in out.filter(like="_HashingFeature.").iloc[0]]}))
"""


@pytest.mark.integration
def test_binder_start_launches_the_stack_and_execs_its_arguments(tmp_path):
    skip_or_fail_without_node()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZML_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AZML_STACK_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [str(BINDER / "start"), sys.executable, "-c", _PROBE, "first", "second arg"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _stop_stack(tmp_path, proc)
    assert proc.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["args"] == ["first", "second arg"]
    assert {"AZML_BASE_URL", "AZML_WORKSPACE", "AZML_SERVICE", "AZML_API_KEY",
            "AZML_STACK_INFO"} <= set(result["env"])
    assert result["row"][-8:] == [1, 1, 2, 2, 0, 2, 0, 1]
    info = json.loads((tmp_path / "stack.json").read_text(encoding="utf-8"))
    assert info["base_url"].startswith("http://127.0.0.1:")
    assert "running" in stderr


def _stop_stack(state: Path, proc: subprocess.Popen) -> None:
    """Stop the background `azml-nb serve` binder/start left running, then its group."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    pid_file = state / "serve.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):                # let it stop Azurite itself
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass
    # anything still in the session binder/start ran in (Azurite, if serve died abruptly)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
