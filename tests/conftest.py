"""Shared fixtures: a real Azurite and the offline stack, started once per test session.

``azurite`` and ``local_stack`` are session-scoped: every test file reuses the same
processes, and they are stopped (by their own pid / server handle) when the session ends.
Tests that need Node.js call the ``requires_node`` fixture (or use ``azurite``): outside CI
they skip with an install hint; under ``CI=true`` a missing Node.js is a failure.
"""
from __future__ import annotations

import os

import pytest

from azml_nb.errors import LocalStackError


def skip_or_fail(message: str) -> None:
    """Skip the calling test for a missing component (*message* says how to install it).

    Under ``CI=true`` a missing component is a failure, never a skip.
    """
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def skip_or_fail_without_node() -> None:
    """Skip the calling test when Node.js or the npm install of Azurite is missing (fail on CI)."""
    from azml_nb.local.azurite import find_azurite

    try:
        find_azurite()
    except LocalStackError as err:
        skip_or_fail(f"Node.js/Azurite are missing: {err}")


@pytest.fixture(scope="session")
def requires_node() -> None:
    """Use in tests that need Node.js (Azurite); see :func:`skip_or_fail_without_node`."""
    skip_or_fail_without_node()


@pytest.fixture(scope="session")
def azurite(requires_node):
    """A real Azurite blob service on a free loopback port (``.connection_string``)."""
    from azml_nb.local.azurite import Azurite

    with Azurite() as blob:
        yield blob


@pytest.fixture(scope="session")
def local_stack(azurite):
    """The offline stack (host + the session's Azurite) with the feature-hashing experiment published.

    ``local_stack.info()`` has base_url, workspace, service, api_key,
    storage_connection_string and storage_container.
    """
    from azml_nb.local import start

    stack = start(storage=azurite)
    try:
        yield stack
    finally:
        stack.stop()  # the host (and gateway); Azurite belongs to the `azurite` fixture
