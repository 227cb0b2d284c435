"""Azure API Management in front of AzureML web services: the seed's API and its operations.

:data:`OPERATIONS` holds the five operations of the walkthrough with the URL templates the
seed enters in the APIM publisher portal. The local gateway routes by these templates,
the ``TryIt`` widget offers them, and :func:`openapi` exports them for a real APIM.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["Operation", "OPERATIONS", "SWAGGER_OPERATION", "API_SUFFIX", "API_DISPLAY_NAME",
           "openapi", "az_commands"]

#: the web API URL suffix and display name the seed uses
API_SUFFIX = "azureml-demo"
API_DISPLAY_NAME = "AzureML Demo API"


@dataclass(frozen=True)
class Operation:
    """One API operation: HTTP method, URL template (path and query) and names."""

    operation_id: str
    display_name: str
    method: str
    url_template: str
    description: str = ""
    responses: tuple[int, ...] = (200,)

    @property
    def path_template(self) -> str:
        """The template without its query part."""
        return self.url_template.split("?", 1)[0]


OPERATIONS: tuple[Operation, ...] = (
    Operation("rrs-execute", "RRS Execute", "POST",
              "/workspaces/{workspace}/services/{service}/execute?api-version={apiversion}&details={details}",
              "Score rows synchronously (request-response service)."),
    Operation("bes-submit", "BES Submit", "POST",
              "/workspaces/{workspace}/services/{service}/jobs?api-version={apiversion}",
              "Submit (but do not start) a batch execution job."),
    Operation("bes-start", "BES Start", "POST",
              "/workspaces/{workspace}/services/{service}/jobs/{jobid}/start?api-version={apiversion}",
              "Start a submitted batch execution job."),
    Operation("bes-status", "BES Status", "GET",
              "/workspaces/{workspace}/services/{service}/jobs/{jobid}?api-version={apiversion}",
              "Get the status or the result of a batch execution job."),
    Operation("bes-delete", "BES Delete", "DELETE",
              "/workspaces/{workspace}/services/{service}/jobs/{jobid}?api-version={apiversion}",
              "Cancel and delete a batch execution job."),
)

#: the service's own help page, passed through the gateway as a sixth operation
SWAGGER_OPERATION = Operation("service-swagger", "Service Swagger", "GET",
                              "/workspaces/{workspace}/services/{service}/swagger.json",
                              "The web service's Swagger 2.0 description (column names and types).")

#: the region host the seed's API points at
DEFAULT_SERVICE_URL = "https://ussouthcentral.services.azureml.net"
_PARAM = re.compile(r"\{([^{}]+)\}")
_PARAM_DOCS = {
    "workspace": "Workspace id of the AzureML web service.",
    "service": "Service id of the web service.",
    "jobid": "Batch job id, as returned by BES Submit.",
    "api-version": "Web service API version; 2.0.",
    "details": "true: the response carries ColumnNames and ColumnTypes.",
}
_QUERY_DEFAULTS = {"api-version": "2.0", "details": "true"}


# --- OpenAPI export --------------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _column_schema(swagger: Mapping[str, Any] | None, name: str) -> dict | None:
    """An OpenAPI schema for the rows of *name* (``input1Item``) from a service's swagger.json."""
    if not swagger:
        return None
    item = (swagger.get("definitions") or {}).get(name)
    if not item or "properties" not in item:
        return None
    props = {}
    for col, spec in item["properties"].items():
        props[col] = {k: spec[k] for k in ("type", "format", "description", "enum") if k in spec}
        props[col].setdefault("type", "string")
    return {"type": "object", "properties": props}


def _schemas(swagger: Mapping[str, Any] | None) -> dict:
    table = {"type": "object",
             "description": "A table: column names and rows of values (Studio's own samples send strings).",
             "properties": {"ColumnNames": {"type": "array", "items": {"type": "string"}},
                            "Values": {"type": "array", "items": {"type": "array", "items": {}}}},
             "required": ["ColumnNames", "Values"]}
    schemas: dict[str, Any] = {
        "InputTable": table,
        "ExecutionRequest": {
            "type": "object",
            "properties": {"Inputs": {"type": "object", "additionalProperties": _ref("InputTable")},
                           "GlobalParameters": {"type": "object", "additionalProperties": {}}},
            "required": ["Inputs"]},
        "OutputTable": {
            "type": "object",
            "properties": {"ColumnNames": {"type": "array", "items": {"type": "string"}},
                           "ColumnTypes": {"type": "array", "items": {"type": "string"},
                                           "description": "AzureML types: Int32, Int64, Double, Boolean, String, ..."},
                           "Values": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}}},
        "OutputResult": {
            "type": "object",
            "properties": {"type": {"type": "string", "example": "table"}, "value": _ref("OutputTable")}},
        "ExecutionResponse": {
            "type": "object",
            "properties": {"Results": {"type": "object", "additionalProperties": _ref("OutputResult")}}},
        "BlobReference": {
            "type": "object",
            "properties": {k: {"type": "string"} for k in
                           ("ConnectionString", "RelativeLocation", "BaseLocation", "SasBlobToken")}},
        "BatchExecutionRequest": {
            "type": "object",
            "properties": {"Inputs": {"type": "object", "additionalProperties": _ref("BlobReference")},
                           "Outputs": {"type": "object", "additionalProperties": _ref("BlobReference")},
                           "GlobalParameters": {"type": "object", "additionalProperties": {}}},
            "required": ["Inputs"]},
        "JobId": {"type": "string", "description": "The batch job id."},
        "BatchJobStatus": {
            "type": "object",
            "properties": {
                "StatusCode": {"description": "0 NotStarted, 1 Running, 2 Failed, 3 Cancelled, 4 Finished "
                                              "(a number or its name)",
                               "oneOf": [{"type": "integer", "enum": [0, 1, 2, 3, 4]},
                                         {"type": "string", "enum": ["NotStarted", "Running", "Failed",
                                                                     "Cancelled", "Finished"]}]},
                "Results": {"type": "object", "nullable": True,
                            "additionalProperties": _ref("BlobReference")},
                "Details": {"type": "string", "nullable": True}}},
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}}}}},
        "Swagger": {"type": "object", "description": "The service's Swagger 2.0 document.",
                    "additionalProperties": {}},
    }
    for name in ("input1Item", "output1Item"):
        col = _column_schema(swagger, name)
        if col is not None:
            schemas[name] = col
    if "input1Item" in schemas:
        names = list(schemas["input1Item"]["properties"])
        schemas["InputTable"] = dict(table, properties=dict(
            table["properties"], ColumnNames={"type": "array", "items": {"type": "string", "enum": names},
                                              "example": names}))
    return schemas


_BODIES = {  # operation id -> (request schema, 200 response schema)
    "rrs-execute": ("ExecutionRequest", "ExecutionResponse"),
    "bes-submit": ("BatchExecutionRequest", "JobId"),
    "bes-start": (None, None),
    "bes-status": (None, "BatchJobStatus"),
    "bes-delete": (None, None),
    "service-swagger": (None, "Swagger"),
}


def _parameters(op: Operation) -> list[dict]:
    path, _, query = op.url_template.partition("?")
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"},
               "description": _PARAM_DOCS.get(name, "")} for name in _PARAM.findall(path)]
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        schema: dict[str, Any] = {"type": "string"}
        if not _PARAM.fullmatch(value):       # a literal value: the only one allowed
            schema["enum"] = [value]
        elif name in _QUERY_DEFAULTS:
            schema["default"] = _QUERY_DEFAULTS[name]
        params.append({"name": name, "in": "query", "required": True, "schema": schema,
                       "description": _PARAM_DOCS.get(name, "")})
    return params


def openapi(*, operations: Sequence[Operation] | None = None, title: str = API_DISPLAY_NAME,
            service_url: str = DEFAULT_SERVICE_URL, url_suffix: str = API_SUFFIX,
            gateway_name: str | None = None, description: str = "", version: str = "1.0",
            swagger: Mapping[str, Any] | None = None) -> dict:
    """An OpenAPI 3.0.1 document of the API, for ``az apim api import --specification-format OpenApiJson``.

    Parameters
    ----------
    operations : sequence of Operation, optional
        Default: :data:`OPERATIONS` (the seed's five) plus :data:`SWAGGER_OPERATION`.
    title : str
        The API's display name.
    service_url : str
        The backend web service URL; it becomes ``servers[0].url`` (the API's service URL on import).
    url_suffix : str
        Recorded as ``info.x-url-suffix`` (pass it to ``az apim api import --path``).
    gateway_name : str, optional
        The APIM instance name; recorded as ``info.x-gateway-url``.
    swagger : dict, optional
        The service's ``swagger.json``: its ``input1Item``/``output1Item`` columns become
        ``components/schemas`` and the request example is carried over.

    Returns
    -------
    dict
        Every operation has an ``operationId``, its path and query parameters inline, and
        its bodies as ``$ref`` to ``components/schemas``.

    Examples
    --------
    >>> doc = openapi()
    >>> sorted(doc["paths"])[0]
    '/workspaces/{workspace}/services/{service}/execute'
    >>> doc["paths"]["/workspaces/{workspace}/services/{service}/execute"]["post"]["operationId"]
    'rrs-execute'
    """
    ops = list(OPERATIONS) + [SWAGGER_OPERATION] if operations is None else list(operations)
    info: dict[str, Any] = {"title": title, "version": version,
                            "description": description or "AzureML web service (RRS and BES) "
                            "behind API Management.", "x-url-suffix": url_suffix}
    if gateway_name:
        info["x-gateway-url"] = f"https://{gateway_name}.azure-api.net/{url_suffix}"
    example = ((swagger or {}).get("definitions", {}).get("ExecutionRequest", {}) or {}).get("example")
    paths: dict[str, dict] = {}
    for op in ops:
        request, response = _BODIES.get(op.operation_id, (None, None))
        spec: dict[str, Any] = {"operationId": op.operation_id, "summary": op.display_name,
                                "description": op.description, "parameters": _parameters(op)}
        if request:
            content: dict[str, Any] = {"schema": _ref(request)}
            if request == "ExecutionRequest" and example:
                content["example"] = example
            spec["requestBody"] = {"required": True, "content": {"application/json": content}}
        responses: dict[str, Any] = {}
        for code in op.responses or (200,):
            entry: dict[str, Any] = {"description": "OK" if code == 200 else f"HTTP {code}"}
            if code == 200 and response:
                entry["content"] = {"application/json": {"schema": _ref(response)}}
            responses[str(code)] = entry
        responses["default"] = {"description": "An error of the web service",
                                "content": {"application/json": {"schema": _ref("Error")}}}
        spec["responses"] = responses
        paths.setdefault(op.path_template, {})[op.method.lower()] = spec
    return {
        "openapi": "3.0.1",
        "info": info,
        "servers": [{"url": service_url.rstrip("/")}],
        "paths": paths,
        "components": {
            "schemas": _schemas(swagger),
            "securitySchemes": {
                "apiKeyHeader": {"type": "apiKey", "name": "Ocp-Apim-Subscription-Key", "in": "header"},
                "apiKeyQuery": {"type": "apiKey", "name": "subscription-key", "in": "query"}}},
        "security": [{"apiKeyHeader": []}, {"apiKeyQuery": []}],
    }


# --- the az apim commands ----------------------------------------------------------------------

def _q(value: str) -> str:
    return shlex.quote(value)


def az_commands(gateway: Any, *, specification_path: str = "azureml-demo.openapi.json",
                resource_group: str = "azureml-demo-rg", location: str = "southcentralus",
                management_api_version: str = "2022-08-01") -> str:
    """A bash script of ``az`` commands that recreates *gateway*'s set-up in a real APIM.

    The instance, each secret named value (its value read from an environment variable,
    never written out), each API (imported from the OpenAPI document at
    *specification_path*, with the operation-by-operation alternative as comments), each
    product with its APIs, the policies (``set-header`` and limits, sent with ``az rest``
    since ``az apim`` has no policy command) and the subscriptions.

    Parameters
    ----------
    gateway : azml_nb.local.gateway.Gateway
        The configuration to export (it need not be running).
    specification_path : str
        Where ``azml-nb apim export -o`` wrote the OpenAPI document.
    """
    arm = ("https://management.azure.com/subscriptions/$AZ_SUBSCRIPTION/resourceGroups/$RG/providers/"
           "Microsoft.ApiManagement/service/$APIM")
    common = '--resource-group "$RG" --service-name "$APIM"'
    lines = [
        "#!/usr/bin/env bash",
        "# Recreate the local API Management set-up in Azure (az CLI 2.50 or newer, `az login` first).",
        "set -euo pipefail",
        f"RG={_q(resource_group)}",
        f"APIM={_q(gateway.name)}            # the instance name must be unique across Azure",
        f"LOCATION={_q(location)}",
        'AZ_SUBSCRIPTION=$(az account show --query id -o tsv)',
    ]
    secrets = [n for n, (_v, s) in gateway._named.items() if s]
    for name in secrets:
        var = re.sub(r"[^A-Z0-9]", "_", name.upper())
        lines.append(f': "${{{var}:?set {var} to the value of the named value {name}}}"')
    lines += [
        "",
        "# 1. The service instance (creation takes up to 30-40 minutes).",
        'az group create --name "$RG" --location "$LOCATION"',
        f'az apim create --resource-group "$RG" --name "$APIM" --location "$LOCATION" '
        f'--publisher-name {_q(gateway.organization)} '
        f'--publisher-email {_q(gateway.admin_email or "admin@example.com")} --sku-name Developer',
        "",
        "# 2. Named values: the backend key stays secret inside APIM.",
    ]
    for name, (value, secret) in gateway._named.items():
        shown = "\"$" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "\"" if secret else _q(value)
        lines.append(f"az apim nv create {common} --named-value-id {_q(name)} --display-name {_q(name)} "
                     f"--value {shown} --secret {'true' if secret else 'false'}")
    for api in gateway.apis.values():
        lines += [
            "",
            f"# 3. The API {api.display_name!r} and its operations, from the OpenAPI document.",
            f"az apim api import {common} --api-id {_q(api.api_id)} --path {_q(api.url_suffix)} "
            f"--display-name {_q(api.display_name)} --service-url {_q(api.service_url)} "
            f"--protocols {' '.join(api.protocols)} "
            f"--subscription-required {'true' if api.subscription_required else 'false'} "
            f"--specification-format OpenApiJson --specification-path {_q(specification_path)}",
            "# ... or, as in the portal, the API first and then each operation:",
            f"# az apim api create {common} --api-id {_q(api.api_id)} --path {_q(api.url_suffix)} "
            f"--display-name {_q(api.display_name)} --service-url {_q(api.service_url)} "
            f"--protocols {' '.join(api.protocols)}",
        ]
        for op in api.operations:
            params = " ".join(f"--template-parameters name={_q(p)} type=string required=true"
                              for p in _PARAM.findall(op.url_template))
            lines.append(f"# az apim api operation create {common} --api-id {_q(api.api_id)} "
                         f"--operation-id {_q(op.operation_id)} --display-name {_q(op.display_name)} "
                         f"--method {op.method} --url-template {_q(op.url_template)} {params}".rstrip())
        if api.policies.xml:
            lines += ["", f"# API policy of {api.api_id!r} (set-header: the backend key from the named value)"]
            lines += _policy_put(f"{arm}/apis/{api.api_id}/policies/policy", api.policies.xml,
                                 f"{api.api_id}.policy.json", management_api_version)
        for op_id, policies in api.operation_policies.items():
            lines += _policy_put(f"{arm}/apis/{api.api_id}/operations/{op_id}/policies/policy",
                                 policies.xml, f"{api.api_id}.{op_id}.policy.json", management_api_version)
    for product in gateway.products.values():
        lines += [
            "",
            f"# 4. Product {product.display_name!r}.",
            f"az apim product create {common} --product-id {_q(product.product_id)} "
            f"--product-name {_q(product.display_name)} --description {_q(product.description or product.display_name)} "
            f"--subscription-required {'true' if product.subscription_required else 'false'} "
            "--approval-required false --state published",
        ]
        for api_id in product.apis:
            lines.append(f"az apim product api add {common} --product-id {_q(product.product_id)} "
                         f"--api-id {_q(api_id)}")
        if product.policies.xml:
            lines += _policy_put(f"{arm}/products/{product.product_id}/policies/policy",
                                 product.policies.xml, f"{product.product_id}.policy.json",
                                 management_api_version)
    if gateway.subscriptions:
        lines += ["", "# 5. Subscriptions (APIM makes new keys; read them with listSecrets)."]
    for sub in gateway.subscriptions.values():
        body = json.dumps({"properties": {"scope": f"/products/{sub.product_id}",
                                          "displayName": sub.display_name, "state": "active"}})
        uri = f"{arm}/subscriptions/{sub.subscription_id}?api-version={management_api_version}"
        lines.append(f'az rest --method put --uri "{uri}" --body {_q(body)}')
        lines.append(f'az rest --method post --uri "{arm}/subscriptions/{sub.subscription_id}/'
                     f'listSecrets?api-version={management_api_version}" --query primaryKey -o tsv')
    if gateway.policies.xml:
        lines += ["", "# Global (All APIs) policy"]
        lines += _policy_put(f"{arm}/policies/policy", gateway.policies.xml, "global.policy.json",
                             management_api_version)
    return "\n".join(lines) + "\n"


def _policy_put(uri: str, xml: str, filename: str, api_version: str) -> list[str]:
    body = json.dumps({"properties": {"format": "rawxml", "value": xml}}, indent=1)
    return [f"cat > {filename} <<'JSON'", body, "JSON",
            f'az rest --method put --uri "{uri}?api-version={api_version}" --body @{filename}']
