"""The Azurite launcher: free port, throw-away folder, ready when started, stopped by its own pid."""
from __future__ import annotations

import os

import pytest
from azure.storage.blob import BlobServiceClient

from azml_nb.errors import LocalStackError
from azml_nb.local import azurite as azurite_mod
from azml_nb.local.azurite import Azurite, find_azurite, node_available


@pytest.mark.integration
def test_start_use_and_stop_by_pid(requires_node):
    blob = Azurite().start()
    try:
        pid, folder = blob.pid, blob._location
        assert blob.running and pid and folder.is_dir()
        os.kill(pid, 0)  # the pid we hold is the live server's
        assert blob.connection_string.startswith("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;")
        assert f"BlobEndpoint=http://127.0.0.1:{blob.port}/devstoreaccount1;" in blob.connection_string
        assert blob.account_key not in repr(blob)
        client = BlobServiceClient.from_connection_string(blob.connection_string)
        client.create_container("probe")
        client.get_blob_client("probe", "a.csv").upload_blob(b"Col2\nx\n")
        assert client.get_blob_client("probe", "a.csv").download_blob().readall() == b"Col2\nx\n"
    finally:
        blob.stop()
    assert not blob.running and blob.pid is None
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the process is reaped by stop(); give the kernel a moment
            os.kill(pid, 0)
            import time
            time.sleep(0.1)
    assert not folder.exists()


def test_missing_node_says_how_to_install(monkeypatch):
    monkeypatch.setattr(azurite_mod.shutil, "which", lambda name: None)
    with pytest.raises(LocalStackError, match=r"Node\.js.*make setup.*npm ci"):
        find_azurite()
    assert not node_available()
    with pytest.raises(LocalStackError, match="Node.js"):
        Azurite().start()


def test_missing_npm_install_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(azurite_mod.shutil, "which", lambda name: "/usr/bin/node")
    monkeypatch.setattr(azurite_mod, "_candidate_roots", lambda: [tmp_path / "node_modules"])
    with pytest.raises(LocalStackError, match=r"Azurite is not installed.*npm ci") as info:
        find_azurite()
    assert str(tmp_path) in str(info.value)


def test_node_rule_skips_outside_ci_and_fails_under_ci(monkeypatch):
    from conftest import skip_or_fail_without_node

    monkeypatch.setattr(azurite_mod.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make setup"):
        skip_or_fail_without_node()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        skip_or_fail_without_node()
