"""azml_nb: score pandas DataFrames against Azure Machine Learning web services from Jupyter.

>>> import azml_nb as az
>>> body = az.to_payload(df)                       # DataFrame -> request body   # doctest: +SKIP
>>> svc = az.WebService(workspace, service, api_key, base_url=url)             # doctest: +SKIP
>>> svc.score(df)                                   # RRS, typed DataFrame back   # doctest: +SKIP

Names are imported on first use, so ``import azml_nb`` stays fast and does not pull in
matplotlib, ipywidgets or the offline stack until they are asked for.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_NAMES = {
    "to_payload": "payload",
    "from_payload": "payload",
    "from_response": "payload",
    "hash_text": "hashing",
    "feature_hashing": "hashing",
    "WebService": "service",
    "BatchJob": "service",
    "JobStatus": "service",
    "ScoreResult": "service",
}
_SUBMODULES = {
    "apim", "cli", "datasets", "errors", "hashing", "local", "payload", "plots",
    "service", "storage", "widgets",
}

__all__ = sorted(_NAMES) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'azml_nb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
