"""Property: whatever JSON a client sends to RRS, the host answers 200 or a 4xx envelope, never 5xx."""
from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azml_nb.local.experiments import simple_feature_hashing_experiment
from azml_nb.local.host import WebServiceHost

pytestmark = pytest.mark.integration

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=8)
names = st.sampled_from(["Col2", "Col1", "", "col2"])
classic = st.fixed_dictionaries({"ColumnNames": st.one_of(st.lists(names, max_size=3), values),
                                 "Values": st.one_of(st.lists(st.lists(scalars, max_size=3), max_size=4), values)})
records = st.lists(st.one_of(st.dictionaries(names, scalars, max_size=2), values), max_size=4)
tables = st.one_of(classic, records, values)
bodies = st.one_of(
    values,
    st.fixed_dictionaries({"Inputs": st.one_of(st.dictionaries(st.sampled_from(["input1", "input2"]), tables, max_size=2),
                                               values)},
                          optional={"GlobalParameters": st.one_of(
                              st.dictionaries(st.sampled_from(["Hashing bitsize", "N-grams", "x"]), scalars), values)}))


@pytest.fixture(scope="module")
def service():
    with WebServiceHost().start() as host:
        yield host.publish(simple_feature_hashing_experiment())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, swagger=st.booleans())
def test_any_json_body_gets_200_or_a_4xx_envelope(service, body, swagger):
    url = service.execute_url + ("&format=swagger" if swagger else "")
    resp = requests.post(url, data=json.dumps(body), timeout=30,
                         headers={"Authorization": "Bearer " + service.api_key, "Content-Type": "application/json"})
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        err = resp.json()["error"]
        assert err["code"] in ("BadArgument", "ModuleExecutionError") and err["message"]
