"""The console refuses every request that is not from its own page, signed in with the launch secret.

A real ConsoleServer on loopback, spoken to with http.client so that Host, Origin and
the other headers can be anything an attacker's page or a rebinding DNS name would send.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

import pytest
from test_console_controller import FORM

from mesoinject.console import Console, ConsoleServer
from mesoinject.link import LinkError
from mesoinject.records import RecordStore


def no_device():
    raise LinkError("no device in this test")


@pytest.fixture
def server(tmp_path):
    """A console of its own per test: its launch secret buys one sign-in."""
    folder = tmp_path
    store = RecordStore(folder / "records.db")
    console = Console(no_device, store, folder).start()
    srv = ConsoleServer(console).start()
    yield srv
    srv.stop()
    console.stop()
    store.close()


def request(srv, method, path, *, host=None, body=None, **headers):
    """body: a JSON-able value, or a str sent as it is."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    headers = {"Host": host or f"127.0.0.1:{srv.port}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    conn.request(method, path, body=body if body is None or isinstance(body, str) else json.dumps(body),
                 headers=headers)
    response = conn.getresponse()
    response.text = response.read().decode()
    conn.close()
    return response


def login(server):
    """GET the launch URL as a browser does; the Cookie header value it earns (None if refused)."""
    response = request(server, "GET", "/" + server.url.split("/", 3)[3])
    cookie = response.getheader("Set-Cookie")
    return response, cookie and re.match(rf"({server.gate.cookie}=[^;]+)", cookie).group(1)


@pytest.fixture
def signed_in(server):
    """A browser's cookie and the page's CSRF token, got the legitimate way."""
    _, cookie = login(server)
    page = request(server, "GET", "/", Cookie=cookie)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return cookie, token


def post(srv, path, cookie, token, body=None, **overrides):
    """A POST as the console's page sends it, but for the headers overridden (None: left out)."""
    headers = {"Cookie": cookie, "X_CSRF_Token": token, "Origin": f"http://127.0.0.1:{srv.port}",
               "Content_Type": "application/json", **overrides}
    return request(srv, "POST", path, body={} if body is None else body,
                   **{k: v for k, v in headers.items() if v is not None})


def test_listens_on_loopback_only(server):
    assert server._sock.getsockname()[0] == "127.0.0.1"
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")


def test_the_launch_secret_buys_a_strict_httponly_cookie_and_leaves_the_address_bar(server):
    response, _ = login(server)
    assert response.status == 303 and response.getheader("Location") == "/"
    cookie = response.getheader("Set-Cookie")
    assert cookie.startswith(f"mesoinject_console_{server.port}=")  # one name per console: ports share cookies
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_launch_secret_buys_one_sign_in_only(server):
    first, cookie = login(server)
    again, second_cookie = login(server)  # the URL from the terminal, history or another user's ps
    assert first.status == 303 and again.status == 403 and second_cookie is None
    assert "already used" in json.loads(again.text)["error"]
    # the browser that used it may click the link again: straight to the page
    revisit = request(server, "GET", "/" + server.url.split("/", 3)[3], Cookie=cookie)
    assert revisit.status == 303 and revisit.getheader("Set-Cookie") is None


@pytest.mark.parametrize("path", ["/", "/api/state", "/api/events", "/api/sessions", "/static/console.js",
                                  "/sessions/1/report", "/sessions/1/export.csv"])
def test_nothing_is_served_without_the_cookie(server, path):
    response = request(server, "GET", path)
    assert response.status == 403
    assert "mesoinject ui" in json.loads(response.text)["error"]  # says how to get in


@pytest.mark.parametrize("token", ["guess", "\u00e9t\u00e9"])
def test_a_wrong_secret_is_refused(server, token):
    response = request(server, "GET", "/?token=" + urllib.parse.quote(token))
    assert response.status == 403 and response.getheader("Set-Cookie") is None


def test_a_forged_cookie_is_refused(server):
    assert request(server, "GET", "/api/state", Cookie=f"{server.gate.cookie}=forged").status == 403


def test_the_page_and_the_api_work_signed_in(server, signed_in):
    cookie, _ = signed_in
    page = request(server, "GET", "/", Cookie=cookie)
    assert page.status == 200
    assert "default-src 'self'" in page.getheader("Content-Security-Policy")
    assert page.getheader("X-Frame-Options") == "DENY"
    state = request(server, "GET", "/api/state", Cookie=cookie)
    assert json.loads(state.text)["device"]["connected"] is False


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.nip.io:{port}", "127.0.0.1", "localhost:1"])
def test_another_host_name_is_refused_even_with_the_cookie(server, signed_in, host):
    """DNS rebinding: a name that resolves to 127.0.0.1 still arrives with its own Host header."""
    response = request(server, "GET", "/api/state", host=host.format(port=server.port), Cookie=signed_in[0])
    assert response.status == 421


def test_localhost_is_our_name_too(server, signed_in):
    assert request(server, "GET", "/api/state", host=f"localhost:{server.port}", Cookie=signed_in[0]).status == 200


def test_a_read_from_another_origin_is_refused(server, signed_in):
    response = request(server, "GET", "/api/state", Cookie=signed_in[0], Origin="http://evil.example")
    assert response.status == 403


def test_a_cross_site_navigation_is_refused(server, signed_in):
    response = request(server, "GET", "/api/sessions", Cookie=signed_in[0], Sec_Fetch_Site="cross-site")
    assert response.status == 403


def test_a_post_with_everything_right_is_accepted(server, signed_in):
    response = post(server, "/api/session/acknowledge", *signed_in)
    assert response.status == 200, response.text


@pytest.mark.parametrize("change, status", [
    ({"Origin": "http://evil.example"}, 403),  # another site's page in the same browser
    ({"Origin": None}, 403),  # no Origin: not from a page we can vouch for
    ({"X_CSRF_Token": None}, 403),
    ({"X_CSRF_Token": "forged"}, 403),
    ({"Content_Type": "application/x-www-form-urlencoded"}, 415),  # what a cross-site form can send
    ({"Sec_Fetch_Site": "same-site"}, 403),  # a sibling port or subdomain
])
def test_a_state_changing_request_without_its_proofs_is_refused(server, signed_in, change, status):
    response = post(server, "/api/session/new", *signed_in, **change)
    assert response.status == status
    assert json.loads(response.text)["error"]


def test_one_sessions_csrf_token_does_not_work_with_another_sessions_cookie(server, signed_in):
    other = f"{server.gate.cookie}=another"
    server.gate.sessions["another"] = "its own token"  # a second browser signed in
    assert post(server, "/api/session/acknowledge", other, signed_in[1]).status == 403
    assert post(server, "/api/session/acknowledge", other, "its own token").status == 200


def test_a_body_that_is_not_json_gets_a_clear_error(server, signed_in):
    response = post(server, "/api/program/check", *signed_in, body="{not json")
    assert response.status == 400 and "not JSON" in json.loads(response.text)["error"]


def test_a_bad_program_names_its_field_without_a_device(server, signed_in):
    form = {"patient_ref": "P-1", "operator": "x", "technique": "point-by-point", "drug": "x", "syringe": "BD 1 mL", "needle_gauge": "30",
            "needle_length": "4 mm", "volume": "30 uL", "depth": "5 mm", "count": "3"}
    response = post(server, "/api/program/check", *signed_in, body=form)
    body = json.loads(response.text)
    assert response.status == 200 and body["ok"] is False
    assert body["field"] == "depth" and "3.8 mm" in body["error"]


def test_an_unknown_export_is_a_json_error_with_the_security_headers(server, signed_in):
    response = request(server, "GET", "/sessions/1/export.xml", Cookie=signed_in[0])
    assert response.status == 404 and "csv" in json.loads(response.text)["error"]
    assert response.getheader("X-Frame-Options") == "DENY"


def test_actions_that_need_a_device_say_so(server, signed_in):
    response = post(server, "/api/session/pause", *signed_in)
    assert response.status == 409 and "no device connected" in json.loads(response.text)["error"]


# ---- the set-up form goes through the program's bounded parser, off the event loop ----

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

