"""Azure API Management in front of AzureML web services: the seed's API and its operations.

:data:`OPERATIONS` holds the five operations of the walkthrough with the URL templates the
seed enters in the APIM publisher portal. The local gateway routes by these templates,
the ``TryIt`` widget offers them, and :func:`openapi` exports them for a real APIM.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Operation", "OPERATIONS", "API_SUFFIX", "API_DISPLAY_NAME"]

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
