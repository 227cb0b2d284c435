"""ipywidgets forms and monitors for notebooks.

==================  =====================================================================
CredentialsForm     workspace, service, keys, endpoint, gateway, storage; Test connection
ParametersForm      api-version, details, format, batch size, concurrency, GlobalParameters
ScoreForm           Studio's "Test" dialog: one field per input column, Score, result table
BatchJobMonitor     a batch job's status, elapsed time, progress, Cancel, result preview
TryIt               the APIM developer portal's "Try it" console for the five operations
==================  =====================================================================

Secrets typed into these forms stay in the kernel: they never enter widget state (so a
saved notebook cannot hold them), reprs or outputs. See ``docs/widgets.md``.

Examples
--------
>>> from azml_nb.widgets import CredentialsForm, ScoreForm     # doctest: +SKIP
>>> creds = CredentialsForm()            # pre-filled from AZML_* variables  # doctest: +SKIP
>>> creds                                                      # doctest: +SKIP
>>> ScoreForm(creds.service())                                 # doctest: +SKIP
"""
from ._common import SecretField
from .batch import BatchJobMonitor
from .credentials import CredentialsForm
from .parameters import ParametersForm
from .score import ScoreForm
from .tryit import TryIt

__all__ = ["CredentialsForm", "ParametersForm", "ScoreForm", "BatchJobMonitor", "TryIt", "SecretField"]
