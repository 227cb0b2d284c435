"""The OpenAPI export and the az apim commands."""
from __future__ import annotations

import json
import re

import pytest
import requests
from openapi_spec_validator import validate

from azml_nb import apim
from azml_nb.apim import OPERATIONS, SWAGGER_OPERATION, az_commands, openapi
from azml_nb.cli import main
from azml_nb.local.gateway import Gateway, demo_gateway

SEED_TEMPLATES = {  # what the seed types into the portal, operation by operation
    ("POST", "/workspaces/{workspace}/services/{service}/execute?api-version={apiversion}&details={details}"),
    ("POST", "/workspaces/{workspace}/services/{service}/jobs?api-version={apiversion}"),
    ("POST", "/workspaces/{workspace}/services/{service}/jobs/{jobid}/start?api-version={apiversion}"),
    ("GET", "/workspaces/{workspace}/services/{service}/jobs/{jobid}?api-version={apiversion}"),
    ("DELETE", "/workspaces/{workspace}/services/{service}/jobs/{jobid}?api-version={apiversion}"),
}


def _shape(template: str) -> tuple[str, frozenset]:
    """A template's path and its query parameter names (the variable names may differ)."""
    path, _, query = template.partition("?")
    return path, frozenset(p.split("=", 1)[0] for p in query.split("&") if p)


def test_operations_are_the_seeds():
    assert {(o.method, o.url_template) for o in OPERATIONS} == SEED_TEMPLATES
    assert [o.display_name for o in OPERATIONS] == ["RRS Execute", "BES Submit", "BES Start",
                                                    "BES Status", "BES Delete"]


def test_openapi_is_valid_and_matches_the_gateway():
    doc = openapi()
    validate(doc)                                          # openapi-spec-validator, OpenAPI 3.0
    assert doc["openapi"].startswith("3.0.")
    gw = demo_gateway("http://127.0.0.1:9", "k")
    gateway_ops = {(o.operation_id, o.method, _shape(o.url_template))
                   for o in gw.api("azureml-demo").operations}
    exported = set()
    for path, item in doc["paths"].items():
        for method, spec in item.items():
            query = frozenset(p["name"] for p in spec["parameters"] if p["in"] == "query")
            path_params = [p["name"] for p in spec["parameters"] if p["in"] == "path"]
            assert path_params == re.findall(r"\{([^}]+)\}", path)   # inline, in order, all required
            assert all(p["required"] for p in spec["parameters"])
            exported.add((spec["operationId"], method.upper(), (path, query)))
    assert exported == gateway_ops
    assert len(exported) == 6
    # bodies are references into components/schemas
    execute = doc["paths"]["/workspaces/{workspace}/services/{service}/execute"]["post"]
    assert execute["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExecutionRequest"}
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)):
        assert ref in doc["components"]["schemas"]


def test_openapi_round_trips_through_import():
    doc = openapi(operations=OPERATIONS)
    gw = Gateway()
    api = gw.import_openapi(doc, url_suffix="azureml-demo")
    assert api.service_url == apim.DEFAULT_SERVICE_URL
    assert api.display_name == apim.API_DISPLAY_NAME
    assert {(o.operation_id, o.method, _shape(o.url_template)) for o in api.operations} == \
        {(o.operation_id, o.method, _shape(o.url_template)) for o in OPERATIONS}
    with pytest.raises(ValueError, match="OpenAPI 3"):
        gw.import_openapi({"swagger": "2.0"}, url_suffix="other")


@pytest.mark.integration
def test_openapi_carries_the_services_column_schema(local_stack):
    info = local_stack.info()
    swagger = requests.get(f"{info['base_url']}/workspaces/{info['workspace']}/services/"
                           f"{info['service']}/swagger.json", timeout=30).json()
    doc = local_stack.gateway.openapi(swagger=swagger)
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert schemas["input1Item"]["properties"] == {"Col2": {"type": "string"}}
    assert "Col2_HashingFeature.0" in schemas["output1Item"]["properties"]
    assert schemas["InputTable"]["properties"]["ColumnNames"]["example"] == ["Col2"]
    assert doc["servers"] == [{"url": info["base_url"]}]


def test_az_commands_recreate_the_set_up_without_secrets():
    gw = demo_gateway("https://ussouthcentral.services.azureml.net", "the-backend-key-XYZ")
    script = az_commands(gw, specification_path="api.json")
    assert "the-backend-key-XYZ" not in script
    for sub in gw.subscriptions.values():
        assert sub.primary_key not in script and sub.secondary_key not in script
    assert "az apim create" in script and "--publisher-name demoazureml" in script
    assert ('az apim nv create --resource-group "$RG" --service-name "$APIM" --named-value-id '
            'azureml-api-key --display-name azureml-api-key --value "$AZUREML_API_KEY" --secret true') in script
    assert re.search(r"az apim api import .*--path azureml-demo .*--specification-format OpenApiJson "
                     r"--specification-path api\.json", script)
    for op in OPERATIONS + (SWAGGER_OPERATION,):
        assert f"--operation-id {op.operation_id} " in script
    assert "az apim product create" in script and "--product-id starter" in script
    assert "az apim product api add" in script
    # the policies go out verbatim (set-header with the named value, the rate limit)
    bodies = re.findall(r"<<'JSON'\n(.*?)\nJSON\n", script, flags=re.S)
    xml = [json.loads(b)["properties"]["value"] for b in bodies]
    assert any('<set-header name="Authorization" exists-action="override">' in x
               and "Bearer {{azureml-api-key}}" in x for x in xml)
    assert any('<rate-limit calls="5" renewal-period="60" />' in x for x in xml)


def test_cli_export_writes_the_document_and_prints_the_commands(tmp_path, capsys):
    out = tmp_path / "spec.json"
    assert main(["apim", "export", "-o", str(out), "--service-url", "https://europewest.services.azureml.net"]) == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["servers"] == [{"url": "https://europewest.services.azureml.net"}]
    printed = capsys.readouterr().out
    assert printed.startswith("#!/usr/bin/env bash")
    assert f"--specification-path {out}" in printed
    assert main(["apim", "export", "-o", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["openapi"] == doc["openapi"]
    assert "az apim api import" in captured.err
