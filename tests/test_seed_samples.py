"""The seed walkthrough's Python samples, moved from Python 2 to 3 and run against the local host.

The two functions below keep the shape of the samples Studio showed on a web service's
dashboard (RRS: one urllib request; BES: upload with the storage SDK, submit, start, poll,
download through the SAS URL). Only the Python 2 -> 3 changes were made: ``urllib2`` ->
``urllib.request``/``urllib.error``, ``print`` statements -> calls, bytes decoded, and the
old ``BlobService.put_blob`` -> azure-storage-blob v12's ``upload_blob``. The service URL,
keys and storage account are set by the tests to the offline stack's.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest
from azure.storage.blob import BlobServiceClient

from azml_nb.datasets import synthetic_reviews
from azml_nb.hashing import feature_hashing

pytestmark = pytest.mark.integration

# set by the tests, like the sample's "<REPLACE WITH ...>" lines
base_url = workspace = service = api_key = None
connection_string = storage_container_name = input_file = output_file = None
input_blob_name = "mydatablob.csv"
output_blob_name = "myresultsblob.csv"


# --- the RRS sample -----------------------------------------------------------------------

def rrs_sample():
    data = {
        "Inputs": {
            "input1": {
                "ColumnNames": ["Col2"],
                "Values": [["This is a good day"]]
            },
        },
        "GlobalParameters": {}
    }
    url = base_url + "/workspaces/" + workspace + "/services/" + service + "/execute?api-version=2.0&details=true"
    headers = {"Content-Type": "application/json", "Authorization": ("Bearer " + api_key)}
    body = str.encode(json.dumps(data))
    try:
        req = urllib.request.Request(url, body, headers)
        response = urllib.request.urlopen(req)
        result = response.read().decode("utf-8")
        print("result:" + result)
    except urllib.error.HTTPError as error:
        print("The request failed with status code: " + str(error.code))
        print(error.info())
        print(json.loads(error.read()))


# --- the BES sample -----------------------------------------------------------------------

def printHttpError(httpError):
    print("The request failed with status code: " + str(httpError.code))
    print(httpError.info())
    print(json.loads(httpError.read()))
    return


def saveBlobToFile(blobUrl, resultsLabel):
    print("Reading the result from " + blobUrl)
    try:
        response = urllib.request.urlopen(blobUrl)
    except urllib.error.HTTPError as error:
        printHttpError(error)
        return
    with open(output_file, "wb+") as f:
        f.write(response.read())
    print(resultsLabel + " have been written to the file " + output_file)
    return


def processResults(result):
    first = True
    results = result["Results"]
    for outputName in results:
        result_blob_location = results[outputName]
        sas_token = result_blob_location["SasBlobToken"]
        base_location = result_blob_location["BaseLocation"]
        relative_url = result_blob_location["RelativeLocation"]
        print("The results for " + outputName + " are available at the following Azure Storage location:")
        print("BaseLocation: " + base_location)
        print("RelativeLocation: " + relative_url)
        print("SasBlobToken: " + sas_token)
        if first:
            first = False
            url3 = base_location + relative_url + sas_token
            saveBlobToFile(url3, "The results for " + outputName)
    return


def invokeBatchExecutionService():
    url = base_url + "/workspaces/" + workspace + "/services/" + service + "/jobs"
    blob_service = BlobServiceClient.from_connection_string(connection_string)
    print("Uploading the input to blob storage...")
    data_to_upload = open(input_file, "r").read()
    blob_service.get_blob_client(storage_container_name, input_blob_name).upload_blob(
        data_to_upload, blob_type="BlockBlob", overwrite=True)
    print("Uploaded the input to blob storage")
    input_blob_path = "/" + storage_container_name + "/" + input_blob_name
    payload = {
        "Input": {
            "ConnectionString": connection_string,
            "RelativeLocation": input_blob_path
        },
        "Outputs": {
            "output1": {"ConnectionString": connection_string,
                        "RelativeLocation": "/" + storage_container_name + "/" + output_blob_name},
        },
        "GlobalParameters": {
        }
    }
    body = str.encode(json.dumps(payload))
    headers = {"Content-Type": "application/json", "Authorization": ("Bearer " + api_key)}
    print("Submitting the job...")
    # submit the job
    req = urllib.request.Request(url + "?api-version=2.0", body, headers)
    try:
        response = urllib.request.urlopen(req)
    except urllib.error.HTTPError as error:
        printHttpError(error)
        return
    result = response.read().decode("utf-8")
    job_id = result[1:-1]  # remove the enclosing double-quotes
    print("Job ID: " + job_id)
    # start the job
    print("Starting the job...")
    req = urllib.request.Request(url + "/" + job_id + "/start?api-version=2.0", b"", headers)
    try:
        response = urllib.request.urlopen(req)
    except urllib.error.HTTPError as error:
        printHttpError(error)
        return
    url2 = url + "/" + job_id + "?api-version=2.0"

    while True:
        print("Checking the job status...")
        req = urllib.request.Request(url2, headers={"Authorization": ("Bearer " + api_key)})
        try:
            response = urllib.request.urlopen(req)
        except urllib.error.HTTPError as error:
            printHttpError(error)
            return
        result = json.loads(response.read())
        status = result["StatusCode"]
        print("status:" + status)
        if status == 0 or status == "NotStarted":
            print("Job " + job_id + " not yet started...")
        elif status == 1 or status == "Running":
            print("Job " + job_id + " running...")
        elif status == 2 or status == "Failed":
            print("Job " + job_id + " failed!")
            print("Error details: " + result["Details"])
            break
        elif status == 3 or status == "Cancelled":
            print("Job " + job_id + " cancelled!")
            break
        elif status == 4 or status == "Finished":
            print("Job " + job_id + " finished!")
            processResults(result)
            break
        time.sleep(1)  # wait one second
    return


# --- the tests ------------------------------------------------------------------------------

@pytest.fixture
def sample_settings(local_stack, tmp_path):
    info = local_stack.info()
    values = dict(base_url=info["base_url"], workspace=info["workspace"], service=info["service"],
                  api_key=info["api_key"], connection_string=info["storage_connection_string"],
                  storage_container_name=info["storage_container"],
                  input_file=str(tmp_path / "mydata.csv"), output_file=str(tmp_path / "myresults.csv"))
    old = {k: globals()[k] for k in values}
    globals().update(values)
    try:
        yield values
    finally:
        globals().update(old)


def test_rrs_sample_scores_the_docs_example(sample_settings, capsys):
    rrs_sample()
    out = capsys.readouterr().out
    assert out.startswith("result:"), out
    result = json.loads(out[len("result:"):])
    assert result["Results"]["output1"]["value"]["Values"] == [
        ["This is a good day", "1", "1", "2", "2", "0", "2", "0", "1"]]


def test_rrs_sample_reports_a_wrong_key(sample_settings, capsys):
    globals()["api_key"] = "not the key"
    rrs_sample()
    out = capsys.readouterr().out
    assert "The request failed with status code: 401" in out and "Invalid credentials provided." in out


def test_bes_sample_runs_a_job_and_saves_the_results(sample_settings, capsys):
    rows = synthetic_reviews(500, seed=11)[["Col2"]]
    rows.to_csv(sample_settings["input_file"], index=False)
    invokeBatchExecutionService()
    out = capsys.readouterr().out
    assert "Uploaded the input to blob storage" in out
    assert " finished!" in out and "failed" not in out, out
    assert "have been written to the file" in out
    got = pd.read_csv(sample_settings["output_file"], dtype={"Col2": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(got, feature_hashing(rows, ["Col2"], bitsize=3), check_dtype=False)
