"""azml_nb.widgets without a browser: build each form, set values, press its buttons, and
check the WebService it makes, the real HTTP calls against the offline stack, what its
Output shows, the disabled state while a call runs, and how errors read.
"""
from __future__ import annotations

import time

import pandas as pd
import pytest
import requests

import azml_nb as az
from azml_nb.apim import API_SUFFIX
from azml_nb.errors import ConfigurationError
from azml_nb.widgets import BatchJobMonitor, CredentialsForm, ParametersForm, ScoreForm, TryIt
from azml_nb.widgets._common import SecretField, output_text

DOCS_TEXT = "This is a good day"
DOCS_COUNTS = [1, 1, 2, 2, 0, 2, 0, 1]
FEATURES = [f"Col2_HashingFeature.{i}" for i in range(8)]


def _html(out) -> str:
    return "".join(m.get("data", {}).get("text/html", "") for m in out.outputs)


def _disabled_log(button) -> list[bool]:
    seen: list[bool] = []
    button.observe(lambda change: seen.append(change["new"]), names="disabled")
    return seen


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def info(local_stack) -> dict:
    return local_stack.info()


@pytest.fixture(scope="module")
def gateway(info):
    """The seed's APIM set-up in front of the session's host (unlimited product)."""
    from azml_nb.local.gateway import demo_gateway

    gw = demo_gateway(info["base_url"], info["api_key"]).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def gateway_info(info, gateway) -> dict:
    return {**info, "gateway_url": gateway.api_url(API_SUFFIX),
            "subscription_key": gateway.subscriptions["demo-unlimited"].primary_key}


# --- SecretField and CredentialsForm without a server ------------------------------------

def test_secret_field_moves_a_typed_secret_out_of_the_widget():
    field = SecretField("API key")
    field.widget.set_state({"value": "typed-in-the-browser-0123456789"})   # as a comm message does
    assert field.value == "typed-in-the-browser-0123456789"
    assert field.widget.value == "" and field.widget.get_state()["value"] == ""
    assert "set" in field.widget.placeholder and "0123" not in repr(field)
    field.clear()
    assert not field.is_set and "set;" not in field.widget.placeholder


def test_secret_field_tells_the_browser_to_clear_the_field():
    """The kernel side of a comm: the browser's update is answered by an update to ''."""
    sent = []

    class Comm:
        comm_id, kernel = "c", "k"

        def send(self, data=None, buffers=None, **kw):
            sent.append(data)

        def on_msg(self, callback):
            pass

        def close(self, *args, **kw):
            pass

    field = SecretField("API key")
    field.widget.comm = Comm()
    field.widget._handle_msg({"content": {"data": {"method": "update", "state": {"value": "typed-key-0123456789"},
                                                   "buffer_paths": []}}, "buffers": []})
    updates = [d["state"] for d in sent if d["method"] == "update"]
    assert {"value": ""} in updates and field.value == "typed-key-0123456789"
    assert not any("typed-key" in str(u) for u in updates)


def test_credentials_prefill_from_environment_variables():
    env = {"AZML_WORKSPACE": "ws1", "AZML_SERVICE": "svc1", "AZML_API_KEY": "k" * 40,
           "AZML_BASE_URL": "http://127.0.0.1:9", "AZML_STORAGE_CONTAINER": "jobs"}
    form = CredentialsForm(env=env)
    assert (form.workspace.value, form.service_name.value, form.api_key.value) == ("ws1", "svc1", "k" * 40)
    assert form.region.value == "" and form.endpoint == "http://127.0.0.1:9"
    assert form.storage_container.value == "jobs" and form.valid
    svc = form.service()
    assert (svc.workspace, svc.service, svc.base_url, svc.gateway_url) == ("ws1", "svc1", "http://127.0.0.1:9", None)
    assert "k" * 40 in svc.secrets


def test_credentials_region_gives_the_studio_host():
    form = CredentialsForm(env=False)
    form.workspace.value, form.service_name.value = "ws", "svc"
    form.api_key.value = "A" * 88
    form.region.value = "europewest"
    assert form.service().base_url == "https://europewest.services.azureml.net"
    assert form._base_url_row.layout.display == "none"


def test_credentials_inline_validation_messages():
    form = CredentialsForm(env=False)
    assert {"workspace", "service", "api_key"} <= set(form.problems()) and not form.valid
    assert "required" in form._messages["workspace"].value
    form.workspace.value, form.service_name.value = "ws", "my service"
    assert "no spaces" in form._messages["service"].value
    form.service_name.value = "svc"
    form.api_key.value = "Bearer abcdefghijklmnopqrstuvwxyz"
    assert "Bearer" in form._messages["api_key"].value
    form.api_key.value = "short"
    assert form.problems() == {} and "short key" in form._messages["api_key"].value
    form.region.value = ""
    form.base_url.value = "127.0.0.1:8000"
    assert "http://" in form.problems()["base_url"] and "http://" in form._messages["base_url"].value
    form.base_url.value = "http://127.0.0.1:8000"
    form.via_gateway.value = True
    assert set(form.problems()) == {"gateway_url", "subscription_key"}
    assert form._gateway_box.layout.display is None
    form.gateway_url.value = "ftp://gateway"
    assert "http" in form.problems()["gateway_url"]
    form.storage_connection_string.value = "nonsense"
    form.storage_container.value = "Bad_Name"
    found = form.problems()
    assert "Key=value" in found["storage_connection_string"] and "lowercase" in found["storage_container"]
    with pytest.raises(ConfigurationError) as caught:
        form.service()
    assert "gateway_url" in str(caught.value) and "storage_container" in str(caught.value)
    assert "nonsense" not in str(caught.value) and "nonsense" not in _html(form.output)


def test_parameters_form_fields_from_a_swagger_document():
    swagger = {"definitions": {"ExecutionRequest": {
        "properties": {"GlobalParameters": {"$ref": "#/definitions/GP"}},
        "example": {"GlobalParameters": {"Depth": 4}}},
        "GP": {"properties": {"Depth": {"type": "integer"}, "Rate": {"type": "number"},
                              "Mode": {"type": "string", "enum": ["a", "b"], "default": "b"},
                              "Verbose": {"type": "boolean"}}}}}
    form = ParametersForm(swagger=swagger, batch_size=50, concurrency=2)
    assert list(form.global_parameters) == ["Depth", "Rate", "Mode", "Verbose"]
    assert form.options() == {"details": True, "format": "classic", "batch_size": 50, "max_workers": 2,
                              "global_parameters": {"Depth": 4, "Mode": "b"}}
    form.global_parameters["Rate"].value = "0.5"
    form.global_parameters["Verbose"].value = False
    form.format.value = "swagger"
    options = form.options()
    assert options["format"] == "swagger"
    assert options["global_parameters"] == {"Depth": 4, "Rate": 0.5, "Mode": "b", "Verbose": False}
    form.global_parameters["Rate"].value = "fast"
    with pytest.raises(ConfigurationError, match="Rate"):
        form.options()
    form.global_parameters["Rate"].value = ""
    form.api_version.value = "2.1"
    assert "2.0" in form.message.value
    with pytest.raises(ConfigurationError, match="api-version"):
        form.options()


# --- against the offline stack (real HTTP) -----------------------------------------------

@pytest.mark.integration
def test_credentials_from_stack_info_make_the_web_service_and_test_the_connection(info):
    form = CredentialsForm.from_info(info)
    assert form.valid and not form.via_gateway.value
    svc = form.service()
    assert (svc.workspace, svc.service, svc.base_url) == (info["workspace"], info["service"], info["base_url"])
    assert svc.storage is not None and svc.storage.container == info["storage_container"]
    seen = _disabled_log(form.test_button)
    form.test_connection()
    assert seen == [True, False]
    text = output_text(form.output)
    assert text.startswith("Connected directly") and "Col2" in text and "9 columns" in text
    assert "keys accepted" in text


@pytest.mark.integration
def test_test_connection_shows_401_for_a_wrong_key(info):
    form = CredentialsForm.from_info({**info, "api_key": "wrong-key-0123456789abcdefghij"})
    form.test_connection()
    text = output_text(form.output)
    assert "Test connection failed: 401 Unauthorized" in text and "Invalid credentials" in text
    assert "wrong-key" not in text and "color:#b00020" in _html(form.output)
    assert not form.test_button.disabled


@pytest.mark.integration
def test_credentials_through_the_gateway(gateway_info, gateway):
    form = CredentialsForm.from_info({k: v for k, v in gateway_info.items() if k != "api_key"})
    assert form.via_gateway.value and form.valid
    svc = form.service()
    assert svc.gateway_url == gateway_info["gateway_url"] and gateway_info["subscription_key"] in svc.secrets
    before = len(gateway.usage)
    form.test_connection()
    assert output_text(form.output).startswith("Connected through API Management")
    assert "keys accepted" in output_text(form.output)
    calls = gateway.usage.frame().iloc[before:]
    assert list(calls["operation"]) == ["service-swagger", "rrs-execute"]
    assert list(calls["status_code"]) == [200, 200]
    form.subscription_key.value = "not-a-subscription-key-000000"
    form.test_connection()
    assert "401" in output_text(form.output) and "invalid subscription key" in output_text(form.output)


@pytest.mark.integration
def test_parameters_form_reads_global_parameters_and_score_form_applies_them(info):
    svc = CredentialsForm.from_info(info).service()
    params = ParametersForm(svc)
    assert {n: f.value for n, f in params.global_parameters.items()} == {"Hashing bitsize": 3, "N-grams": 2}
    form = ScoreForm(svc, parameters=params)
    form.fields["Col2"].value = DOCS_TEXT
    params.global_parameters["Hashing bitsize"].value = 4
    result = form.score()
    assert [c for c in result.columns if "Hashing" in c] == [f"Col2_HashingFeature.{i}" for i in range(16)]
    assert result.iloc[0, 1:].tolist() == az.hash_text(DOCS_TEXT, bitsize=4).tolist()


@pytest.mark.integration
def test_score_form_scores_the_docs_example_and_is_disabled_while_running(info):
    session = requests.Session()
    svc = CredentialsForm.from_info(info).service(session=session)
    form = ScoreForm(svc)
    assert list(form.fields) == ["Col2"]
    assert form.fields["Col2"].value == DOCS_TEXT                # the swagger.json example request
    assert ScoreForm(svc, example=False).fields["Col2"].value == ""
    during: list[tuple[bool, bool]] = []
    session.hooks["response"].append(
        lambda r, *a, **k: during.append((form.score_button.disabled, form.running)))
    seen = _disabled_log(form.score_button)
    form.score_button.click()
    assert during and all(d == (True, True) for d in during)
    assert seen == [True, False] and not form.running
    assert form.result[FEATURES].iloc[0].tolist() == DOCS_COUNTS
    html = _html(form.output)
    assert "<table" in html and "Col2_HashingFeature.7" in html and DOCS_TEXT in html
    assert "1 row x 9 columns" in output_text(form.output)


@pytest.mark.integration
def test_score_form_shows_401_for_a_wrong_key(info):
    svc = CredentialsForm.from_info({**info, "api_key": "wrong-key-0123456789abcdefghij"}).service()
    form = ScoreForm(svc, schema={"Col2": {"type": "string"}})
    form.fields["Col2"].value = DOCS_TEXT
    assert form.score() is None
    assert form.error.status_code == 401
    text = output_text(form.output)
    assert text.startswith("Score failed: 401 Unauthorized: Invalid credentials provided.")
    assert "wrong-key" not in text and not form.score_button.disabled


@pytest.mark.integration
def test_score_form_shows_the_services_400_for_a_wrong_column(info):
    svc = CredentialsForm.from_info(info).service()
    form = ScoreForm(svc, data=pd.DataFrame({"Text": [DOCS_TEXT]}), check_schema=False)
    assert list(form.fields) == ["Text"] and form.fields["Text"].value == DOCS_TEXT
    form.score()
    assert form.error.status_code == 400
    text = output_text(form.output)
    assert text.startswith("Score failed: 400 ") and form.error.code in text
    assert all(d.get("code", "") in text for d in form.error.details)
    assert "Col2" in text                                   # the service names the expected column
    # with the client's schema check on, the mistake is caught before sending
    checked = ScoreForm(svc, data=pd.DataFrame({"Text": [DOCS_TEXT]}))
    checked.score()
    assert "SchemaError" in output_text(checked.output) and "missing:  Col2" in output_text(checked.output)


@pytest.mark.integration
def test_score_form_sends_a_whole_frame(info):
    svc = CredentialsForm.from_info(info).service()
    data = az.datasets.book_reviews()[["Col2"]].head(25)
    form = ScoreForm(svc, data=data)
    assert form.all_rows.value and form.fields["Col2"].disabled
    result = form.score()
    expected = az.feature_hashing(data, ["Col2"], bitsize=3)
    pd.testing.assert_frame_equal(result[FEATURES], expected[FEATURES], check_dtype=False)
    assert "first 20 of 25 rows" in output_text(form.output)
    form.all_rows.value = False
    assert len(form.frame()) == 1 and form.frame().iloc[0, 0] == data.iloc[0, 0]


@pytest.mark.integration
def test_batch_job_monitor_follows_a_job_to_its_result(info):
    svc = CredentialsForm.from_info(info).service()
    data = az.datasets.synthetic_reviews(60, seed=5)[["Col2"]]
    monitor = BatchJobMonitor(svc.submit_batch(data), interval=0.2)     # polls in the background
    monitor._thread.join(60)
    assert monitor.status == "Finished" and monitor.progress.value == 3
    assert monitor.progress.bar_style == "success" and monitor.cancel_button.disabled
    assert "output1" in monitor.location.value and ".csv" in monitor.location.value
    assert "sig=" not in monitor.location.value and "?" not in monitor.location.value
    expected = az.feature_hashing(data, ["Col2"], bitsize=3)
    pd.testing.assert_frame_equal(monitor.result[FEATURES], expected[FEATURES], check_dtype=False)
    assert "first 10 of 60 rows" in output_text(monitor.output) and "<table" in _html(monitor.output)
    assert monitor.elapsed_label.value.startswith("elapsed: ") and "since" in monitor.elapsed_label.value


@pytest.mark.integration
def test_batch_job_monitor_cancel(info):
    svc = CredentialsForm.from_info(info).service()
    job = svc.submit_batch(pd.DataFrame({"Col2": [DOCS_TEXT] * 5}), start=False)
    monitor = BatchJobMonitor(job, autostart=False)
    assert monitor.refresh() == "NotStarted" and monitor.progress.value == 1
    seen = _disabled_log(monitor.cancel_button)
    monitor.cancel()
    assert seen == [True] and monitor.status == "Cancelled" and monitor.progress.bar_style == "warning"
    assert "cancelled" in output_text(monitor.output)
    assert monitor.wait(1) == "Cancelled"                  # no more status requests


@pytest.mark.integration
def test_batch_job_monitor_shows_a_failed_jobs_details(gateway_info):
    tryit = TryIt.from_info(gateway_info)
    tryit.operation.value = "bes-submit"          # the body names input1.csv, which is not there
    assert tryit.send()["status"] == 200
    job_id = tryit.params["jobid"].value
    tryit.operation.value = "bes-start"
    assert tryit.send()["status"] == 200
    svc = CredentialsForm.from_info(gateway_info).service()
    monitor = BatchJobMonitor(svc.job(job_id), autostart=False, interval=0.1)
    assert monitor.wait(30) == "Failed" and monitor.progress.bar_style == "danger"
    assert "not found" in output_text(monitor.output) and "input1.csv" in output_text(monitor.output)


@pytest.mark.integration
def test_batch_job_monitor_shows_a_status_error(info):
    svc = CredentialsForm.from_info(info).service()
    monitor = BatchJobMonitor(svc.job("no-such-job"), autostart=False)
    monitor.refresh()
    assert "Status request failed: 404" in output_text(monitor.output) and monitor.error.status_code == 404


@pytest.mark.integration
def test_tryit_rrs_execute_through_the_gateway(gateway_info):
    tryit = TryIt.from_info(gateway_info)
    assert [name for name in tryit.params if tryit._param_rows[name] in tryit._params_box.children] == \
        ["workspace", "service", "apiversion", "details"]
    seen = _disabled_log(tryit.send_button)
    last = tryit.send()
    assert seen == [True, False]
    assert last["method"] == "POST" and last["status"] == 200 and last["reason"] == "OK"
    assert last["url"] == (f"{gateway_info['gateway_url']}/workspaces/{gateway_info['workspace']}/services/"
                           f"{gateway_info['service']}/execute?api-version=2.0&details=true")
    assert last["request_headers"] == {"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": "***"}
    assert "application/json" in last["headers"]["content-type"]
    assert '["This is a good day", "1", "1", "2", "2", "0", "2", "0", "1"]' in last["body"]
    text = output_text(tryit.output)
    for part in ("Requested URL", "Response status\n200 OK", "Response headers", "Response content"):
        assert part in text
    assert gateway_info["subscription_key"] not in text


@pytest.mark.integration
def test_tryit_shows_the_gateways_401_without_a_key(gateway_info):
    tryit = TryIt.from_info({**gateway_info, "subscription_key": None})
    last = tryit.send()
    assert last["status"] == 401 and "missing subscription key" in last["body"]
    assert "Response status\n401" in output_text(tryit.output)


@pytest.mark.integration
def test_tryit_validates_parameters_and_headers(gateway_info):
    tryit = TryIt.from_info(gateway_info)
    tryit.operation.value = "bes-status"
    assert tryit.body.disabled and "required" in tryit._param_messages["jobid"].value
    assert tryit.send() is None and "jobid" in output_text(tryit.output)
    tryit.operation.value = "rrs-execute"
    tryit.headers.value = "Content-Type application/json"
    tryit.send()
    assert "Headers line 1" in output_text(tryit.output)


@pytest.mark.integration
def test_tryit_runs_a_batch_job_through_the_five_operations(gateway_info, info):
    from azml_nb.storage import BlobStorage

    store = BlobStorage(info["storage_connection_string"], info["storage_container"])
    store.upload_bytes("input1.csv", f"Col2\n{DOCS_TEXT}\nanother day\n".encode())
    try:
        tryit = TryIt.from_info(gateway_info)
        tryit.operation.value = "bes-submit"
        assert "{{storage-connection-string}}" in tryit.body.value
        assert tryit.send()["status"] == 200 and len(tryit.params["jobid"].value) > 8
        tryit.operation.value = "bes-start"
        assert tryit.send()["status"] == 200
        tryit.operation.value = "bes-status"
        for _ in range(100):
            last = tryit.send()
            if '"Finished"' in last["body"] or '"Failed"' in last["body"]:
                break
            time.sleep(0.1)
        assert '"StatusCode": "Finished"' in last["body"]
        token = tryit.response.json()["Results"]["output1"]["SasBlobToken"]
        assert token and token not in last["body"] and '"SasBlobToken": "***"' in last["body"]
        account_key = info["storage_connection_string"].split("AccountKey=")[1].split(";")[0]
        assert account_key not in last["body"] and account_key not in output_text(tryit.output)
        tryit.operation.value = "bes-delete"
        assert tryit.send()["status"] == 200
        tryit.operation.value = "bes-status"
        assert tryit.send()["status"] == 404
    finally:
        store.delete("input1.csv")
