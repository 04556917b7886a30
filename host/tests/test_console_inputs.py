"""The console's set-up form goes through the program's bounded parser, off the event loop: a hostile
value is an answer naming the field, never a 500, and a body the page would never send is a 400."""

from __future__ import annotations

import json

import pytest

from test_console_controller import FORM
from test_console_security import post, server, signed_in  # noqa: F401 (fixtures)


@pytest.mark.parametrize("change, field", [
    ({"volume": "1/0 uL"}, "volume_per_shot"),  # ZeroDivisionError inside pint
    ({"volume": "2**3 uL"}, "volume_per_shot"),  # evaluated by pint: 8 uL
    ({"depth": "nan mm"}, "depth"),
    ({"cadence": "1e400 Hz"}, "cadence"),
    ({"count": [[[40]]]}, "shots"),
    ({"operator": {"name": "x"}}, "operator"),
])
def test_a_hostile_form_value_is_an_answer_naming_the_field(server, signed_in, change, field):
    response = post(server, "/api/program/check", *signed_in, body={**FORM, **change})
    assert response.status == 200, response.text
    assert json.loads(response.text)["field"] == field and json.loads(response.text)["ok"] is False


@pytest.mark.parametrize("body", ["[" * 100000 + "]" * 100000, '{"count": ' + "9" * 5000 + "}"],
                         ids=["deep", "5000 digits"])
def test_a_body_the_page_never_sends_is_a_bad_request(server, signed_in, body):
    response = post(server, "/api/program/check", *signed_in, body=body)
    assert response.status == 400 and "not JSON" in json.loads(response.text)["error"]

