"""The offline stack: a local AzureML web-service host, Azurite for blobs, and a gateway.

>>> import azml_nb as az
>>> with az.local.start() as stack:                 # Azurite + host, feature hashing published
...     svc = stack.web_service()                   # doctest: +SKIP
...     svc.score(df)                               # doctest: +SKIP

Names are imported on first use, so importing :mod:`azml_nb.local` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule of azml_nb.local
_NAMES = {
    "start": "stack",
    "OfflineStack": "stack",
    "WebServiceHost": "host",
    "PublishedService": "host",
    "FaultInjection": "host",
    "Azurite": "azurite",
    "Experiment": "experiments",
    "SelectColumns": "experiments",
    "FeatureHashing": "experiments",
    "PythonScript": "experiments",
    "simple_feature_hashing_experiment": "experiments",
    "Gateway": "gateway",
    "demo_gateway": "gateway",
    "PolicyError": "policies",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'azml_nb.local' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
