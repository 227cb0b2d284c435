"""The offline stack as a Python context manager and as `azml-nb serve`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pandas as pd
import pytest

from azml_nb.local import start

pytestmark = pytest.mark.integration

INFO_KEYS = {"base_url", "workspace", "service", "api_key", "storage_connection_string", "storage_container"}


def _port_open(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _docs_example(info) -> dict:
    url = f"{info['base_url']}/workspaces/{info['workspace']}/services/{info['service']}/execute?api-version=2.0&details=true"
    body = json.dumps({"Inputs": {"input1": {"ColumnNames": ["Col2"], "Values": [["This is a good day"]]}},
                       "GlobalParameters": {}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                             "Authorization": "Bearer " + info["api_key"]})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_start_gives_a_running_stack_and_stops_everything(requires_node):
    with start() as stack:
        info = stack.info()
        assert INFO_KEYS <= set(info)
        assert info["storage_container"] == stack.storage_container
        assert _docs_example(info)["Results"]["output1"]["value"]["Values"][0][1:] == ["1", "1", "2", "2", "0", "2", "0", "1"]
        azurite_pid = stack.azurite.pid
        assert info["api_key"] not in repr(stack)
        svc = stack.web_service(gateway=False)
        scored = svc.score(pd.DataFrame({"Col2": ["This is a good day"]}))
        assert scored.iloc[0, 1:].tolist() == [1, 1, 2, 2, 0, 2, 0, 1]
    assert not _port_open(info["base_url"])
    assert not _port_open(info["storage_connection_string"].split("BlobEndpoint=")[1])
    assert stack.azurite.pid is None and azurite_pid


def test_start_without_storage_runs_rrs_only():
    with start(storage=False) as stack:
        info = stack.info()
        assert stack.azurite is None and info["storage_connection_string"] is None
        assert _docs_example(info)["Results"]["output1"]["type"] == "table"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_json_first_and_stops_on_ctrl_c(requires_node, sig):
    proc = subprocess.Popen([sys.executable, "-m", "azml_nb.cli", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        first = proc.stdout.readline()
        info = json.loads(first)
        assert INFO_KEYS <= set(info)
        human = []
        while not human or "Ctrl-C" not in human[-1]:
            human.append(proc.stdout.readline())
            assert human[-1] and len(human) < 10, human
        assert any(info["service"] in line for line in human)
        assert _docs_example(info)["Results"]["output1"]["value"]["ColumnTypes"][1] == "Int32"
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read()
        assert "stopped" in err and "Traceback" not in err
        assert info["api_key"] not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _port_open(info["base_url"])
    assert not _port_open(info["storage_connection_string"].split("BlobEndpoint=")[1])


def test_stack_demo_scores_and_runs_a_batch_job(local_stack, capsys):
    from azml_nb.demo import stack_demo

    stack_demo(local_stack)
    out = capsys.readouterr().out
    assert "features: 1 1 2 2 0 2 0 1" in out
    assert "Finished" in out and "equal to local feature_hashing: True" in out
    assert local_stack.service.api_key not in out


def test_job_repr_holds_no_storage_key(local_stack):
    from azml_nb.local.bes import BlobLocation, Job

    loc = BlobLocation(local_stack.storage_connection_string, "/azureml/x.csv")
    job = Job("id", ("ws", "svc"), {"input1": loc}, {"output1": loc}, {},
              results={"output1": {"ConnectionString": local_stack.storage_connection_string}})
    assert local_stack.azurite.account_key not in repr(job)


def test_serve_without_node_says_how_to_fix(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), AZML_NB_NODE_MODULES=str(tmp_path))  # no `node` on PATH
    proc = subprocess.run([sys.executable, "-m", "azml_nb.cli", "serve"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Node.js" in proc.stderr and "make setup" in proc.stderr and "--no-storage" in proc.stderr
