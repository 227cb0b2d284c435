"""No secret in what a saved notebook stores: every form is filled with real keys, used
against the offline stack, and its widget state is serialised the ways Jupyter does
(the notebook's widget-state metadata, embedded HTML, the kernel's manager state) and
scanned, together with every repr and log line.
"""
from __future__ import annotations

import io
import json
import logging

import nbformat
import pandas as pd
import pytest
from ipywidgets import Widget
from ipywidgets.embed import embed_data, embed_minimal_html

from azml_nb.apim import API_SUFFIX
from azml_nb.widgets import BatchJobMonitor, CredentialsForm, ParametersForm, ScoreForm, TryIt

pytestmark = pytest.mark.integration


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _saved_notebook(views) -> str:
    """The text of a notebook saved with these widgets' state (as JupyterLab stores it)."""
    state = embed_data(views=views, drop_defaults=False)["manager_state"]
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    nb.cells.append(nbformat.v4.new_code_cell("form", outputs=[nbformat.v4.new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": {
            "model_id": v.model_id, "version_major": 2, "version_minor": 0}}) for v in views]))
    return nbformat.writes(nb)


def test_no_secret_in_widget_state_reprs_outputs_or_logs(local_stack, caplog):
    from azml_nb.local.gateway import demo_gateway

    info = local_stack.info()
    gw = demo_gateway(info["base_url"], info["api_key"]).start()
    caplog.set_level(logging.DEBUG)
    try:
        sub_key = gw.subscriptions["demo-unlimited"].primary_key
        gateway_info = {**info, "gateway_url": gw.api_url(API_SUFFIX), "subscription_key": sub_key}
        account_key = info["storage_connection_string"].split("AccountKey=")[1].split(";")[0]
        typed_key = "typed-by-the-user-" + info["api_key"][:20]
        secrets = {"api key": info["api_key"], "subscription key": sub_key,
                   "storage connection string": info["storage_connection_string"],
                   "storage account key": account_key, "typed key": typed_key}

        # credentials: pre-filled, then a key typed in the browser (a comm update), Test connection
        creds = CredentialsForm.from_info(info)
        creds.api_key.widget.set_state({"value": typed_key})
        assert creds.api_key.value == typed_key
        creds.api_key.value = info["api_key"]
        creds.test_connection()
        assert "keys accepted" in creds.output.outputs[0]["data"]["text/plain"]
        gateway_creds = CredentialsForm.from_info(gateway_info, via_gateway=True)
        gateway_creds.test_connection()
        wrong = CredentialsForm.from_info({**info, "api_key": typed_key})
        wrong.test_connection()                                    # a 401 shown in the form

        svc = creds.service()
        params = ParametersForm(svc)
        score = ScoreForm(svc, parameters=params)
        score.fields["Col2"].value = "This is a good day"
        assert score.score() is not None
        failed_score = ScoreForm(wrong.service(), schema={"Col2": {"type": "string"}})
        failed_score.score()

        job = svc.submit_batch(pd.DataFrame({"Col2": ["This is a good day"] * 3}))
        monitor = BatchJobMonitor(job, autostart=False, interval=0.1)
        assert monitor.wait(60) == "Finished"
        sas = job.refresh()["Results"]["output1"]["SasBlobToken"]
        secrets["SAS token"] = sas.lstrip("?")
        secrets["SAS signature"] = sas.split("sig=")[1].split("&")[0]

        tryit = TryIt.from_info(gateway_info)
        tryit.api_key.value = info["api_key"]
        assert tryit.send()["status"] == 200
        tryit.operation.value = "bes-status"
        tryit.params["jobid"].value = job.id
        assert '"Finished"' in tryit.send()["body"]

        forms = [creds, gateway_creds, wrong, params, score, failed_score, monitor, tryit]
        texts = {
            "saved notebook": _saved_notebook(forms),
            "kernel manager state": json.dumps(Widget.get_manager_state(drop_defaults=False)),
            "repr": "\n".join(repr(w) for form in forms for w in _walk(form)),
            # the package's own log lines (urllib3's DEBUG lines print request URLs verbatim)
            "log": "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("azml_nb")),
        }
        html = io.StringIO()
        embed_minimal_html(html, views=forms, title="forms")
        texts["embedded HTML"] = html.getvalue()
        # the scan must be able to fail: the raw answer of bes-status does hold the SAS token
        assert secrets["SAS signature"] in tryit.response.text
        assert "Results" in texts["saved notebook"] and "Col2_HashingFeature" in texts["saved notebook"]
        for where, text in texts.items():
            for name, secret in secrets.items():
                assert secret not in text, f"the {name} appears in the {where}"
    finally:
        gw.stop()
