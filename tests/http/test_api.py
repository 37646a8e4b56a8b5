"""The API endpoint and session in process: request-level errors as problem documents, auth, CORS."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.jmap.request import MAX_DEPTH

from ..helpers import CORE, MAIL, USING, basic, make_tidings
from .conftest import Driver

PROBLEM = "application/problem+json"


def _problem(status: int, headers: dict[str, str], body: Any, kind: str, expected_status: int = 400) -> None:
    assert status == expected_status, body
    assert headers["content-type"] == PROBLEM
    assert body["type"] == f"urn:ietf:params:jmap:error:{kind}"
    assert body["status"] == expected_status


@pytest.mark.parametrize(
    "body",
    [b"{", b"\xff\xfe", b'{"using": ["\xc3"], "methodCalls": []}', b"[" * 2000 + b"]" * 2000,
     b'{"using": [], "methodCalls": [["Core/echo", {"x": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b'}, "c"]]}'],
)
def test_malformed_json_is_a_notJSON_problem(driver: Driver, body: bytes) -> None:
    _problem(*driver.api(body), "notJSON")


def test_a_content_type_other_than_json_is_notJSON(driver: Driver) -> None:
    body = orjson.dumps({"using": [CORE], "methodCalls": []})
    _problem(*driver.api(body, {"Content-Type": "text/plain"}), "notJSON")
    status, _, _ = driver.api(body, {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200


def test_json_that_is_not_a_request_is_notRequest(driver: Driver) -> None:
    _problem(*driver.api({"using": [CORE]}), "notRequest")


def test_an_unknown_capability_is_unknownCapability(driver: Driver) -> None:
    _problem(*driver.api({"using": [CORE, "urn:example:nope"], "methodCalls": []}), "unknownCapability")


def test_too_many_calls_is_a_limit_problem_naming_maxCallsInRequest(driver: Driver) -> None:
    status, headers, body = driver.api({"using": [CORE], "methodCalls": [["Core/echo", {}, "c"]] * 6})
    _problem(status, headers, body, "limit")
    assert body["limit"] == "maxCallsInRequest"


def test_a_body_over_maxSizeRequest_is_a_limit_problem_whether_declared_or_not(driver: Driver) -> None:
    big = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"x": "a" * 30_000}, "c"]]})
    status, headers, body = driver.api(big)
    _problem(status, headers, body, "limit")
    assert body["limit"] == "maxSizeRequest"
    status, headers, body = driver.api(b"{}", {"Content-Length": "999999999"})
    _problem(status, headers, body, "limit")
    assert body["limit"] == "maxSizeRequest"


def test_requests_past_maxConcurrentRequests_get_a_429_limit_problem(driver: Driver) -> None:
    user = driver.tidings.accounts.check_password("alice", "secret")
    assert user is not None
    held = driver.tidings.limits.max_concurrent_requests
    for _ in range(held):
        driver.app.requests.acquire(user.id)
    try:
        status, headers, body = driver.api({"using": [CORE], "methodCalls": []})
        _problem(status, headers, body, "limit", 429)
        assert body["limit"] == "maxConcurrentRequests"
        # Another user is not affected.
        assert driver.api({"using": [CORE], "methodCalls": []}, user=driver.bob)[0] == 200
    finally:
        for _ in range(held):
            driver.app.requests.release(user.id)
    assert driver.api({"using": [CORE], "methodCalls": []})[0] == 200


@pytest.mark.parametrize(
    "authorization",
    ["", "Basic", "Basic !!!", basic("alice", "wrong"), basic("nobody", "secret"), "Bearer", "Bearer tdg_nope",
     "Digest abc", "Basic " + "w6k=", basic("", "secret")],
)
def test_bad_credentials_are_401_with_a_challenge_for_both_schemes(driver: Driver, authorization: str) -> None:
    status, headers, _ = driver.send("GET", "/.well-known/jmap", user=authorization or " ")
    assert status == 401
    assert headers["content-type"] == PROBLEM
    assert "Basic" in headers["www-authenticate"] and "Bearer" in headers["www-authenticate"]
    assert driver.api({"using": [CORE], "methodCalls": []}, user=authorization or " ")[0] == 401


def test_a_bearer_token_works_until_it_is_revoked(driver: Driver) -> None:
    token = driver.tidings.accounts.create_token("bob", "laptop")
    status, _, body = driver.send("GET", "/.well-known/jmap", user=f"Bearer {token}")
    assert status == 200 and orjson.loads(body)["username"] == "bob"
    driver.tidings.accounts.revoke_token("bob", "laptop")
    assert driver.send("GET", "/.well-known/jmap", user=f"Bearer {token}")[0] == 401


def test_a_changed_password_stops_working_at_once(tmp_path: Any) -> None:
    from tidings.http.app import App

    tidings = make_tidings(tmp_path / "data")
    tidings.accounts.add_user("carol", "old")
    driver = Driver(App(tidings))
    old, new = basic("carol", "old"), basic("carol", "new")
    assert driver.send("GET", "/.well-known/jmap", user=old)[0] == 200
    tidings.accounts.set_password("carol", "new")
    assert driver.send("GET", "/.well-known/jmap", user=old)[0] == 401
    assert driver.send("GET", "/.well-known/jmap", user=new)[0] == 200
    tidings.accounts.remove_user("carol")
    assert driver.send("GET", "/.well-known/jmap", user=new)[0] == 401
    tidings.close()


def test_the_session_describes_capabilities_limits_accounts_and_url_templates(driver: Driver) -> None:
    status, headers, raw = driver.send("GET", "/.well-known/jmap", headers={"Host": "mail.example:8443"})
    session = orjson.loads(raw)
    assert status == 200 and headers["cache-control"].startswith("no-cache")
    limits = session["capabilities"][CORE]
    assert limits["maxSizeRequest"] == 20_000 and limits["maxCallsInRequest"] == 5
    assert set(limits["collationAlgorithms"]) >= {"i;ascii-casemap", "i;unicode-casemap", "i;ascii-numeric"}
    assert session["username"] == "alice"
    account_id = session["primaryAccounts"][MAIL]
    assert session["accounts"][account_id]["accountCapabilities"][MAIL]["maxMailboxDepth"] == 10
    assert session["apiUrl"] == "http://mail.example:8443/jmap/api/"
    for name, variables in (("downloadUrl", ["accountId", "blobId", "name", "type"]),
                            ("uploadUrl", ["accountId"]), ("eventSourceUrl", ["types", "closeafter", "ping"])):
        assert all("{" + v + "}" in session[name] for v in variables), session[name]
    # The state is what every API response echoes, and it does not depend on the Host used.
    other = orjson.loads(driver.send("GET", "/jmap/session")[2])
    assert other["state"] == session["state"]
    assert driver.calls([["Core/echo", {}, "c"]]) and driver.api(
        {"using": USING, "methodCalls": []})[2]["sessionState"] == session["state"]


def test_the_session_state_changes_when_the_session_content_does(tmp_path: Any) -> None:
    from tidings.http.app import App

    states = []
    for limit in (10, 11):
        tidings = make_tidings(tmp_path / f"d{limit}", max_calls_in_request=limit)
        tidings.accounts.add_user("dan", "pw")
        states.append(orjson.loads(Driver(App(tidings)).send("GET", "/.well-known/jmap",
                                                               user=basic("dan", "pw"))[2])["state"])
        tidings.close()
    assert states[0] != states[1]


def test_session_states_differ_between_users(driver: Driver) -> None:
    alice = orjson.loads(driver.send("GET", "/.well-known/jmap")[2])["state"]
    bob = orjson.loads(driver.send("GET", "/.well-known/jmap", user=driver.bob)[2])["state"]
    assert alice != bob


def test_unknown_paths_are_404_and_wrong_methods_405_as_problems(driver: Driver) -> None:
    status, headers, _ = driver.send("GET", "/nope")
    assert status == 404 and headers["content-type"] == PROBLEM
    status, headers, _ = driver.send("GET", "/jmap/api/")
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = driver.send("PUT", "/jmap/download/A1/B/x")
    assert status == 405 and "GET" in headers["allow"]


def test_cors_answers_allowed_origins_only(driver: Driver) -> None:
    status, headers, _ = driver.send("OPTIONS", "/jmap/api/", headers={"Origin": "https://app.example",
                                                                       "Access-Control-Request-Method": "POST"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert "Authorization" in headers["access-control-allow-headers"]
    assert "POST" in headers["access-control-allow-methods"]
    _, headers, _ = driver.send("OPTIONS", "/jmap/api/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers
    _, headers, _ = driver.send("GET", "/.well-known/jmap", headers={"Origin": "https://app.example"})
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert "WWW-Authenticate" in headers["access-control-expose-headers"]
    _, headers, _ = driver.send("GET", "/.well-known/jmap", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_one_user_cannot_reach_another_users_account(driver: Driver) -> None:
    bob_account = orjson.loads(driver.send("GET", "/.well-known/jmap", user=driver.bob)[2])["primaryAccounts"][MAIL]
    out = driver.calls([["Mailbox/get", {"accountId": bob_account}, "a"],
                        ["Mailbox/set", {"accountId": bob_account, "create": {"x": {"name": "x"}}}, "b"]])
    assert [r[1]["type"] for r in out] == ["accountNotFound", "accountNotFound"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)
mailbox_args = st.fixed_dictionaries(
    {"accountId": st.sampled_from(["A1", "A2", "x"])},
    optional={k: json_values | st.sampled_from(["M1", "#a", "0", "1"]) for k in
              ("ids", "properties", "create", "update", "destroy", "ifInState", "filter", "sort", "position",
               "anchor", "limit", "sinceState", "sinceQueryState", "maxChanges", "onDestroyRemoveEmails",
               "sortAsTree", "filterAsTree", "calculateTotal")},
)
method_names = st.sampled_from(["Mailbox/get", "Mailbox/set", "Mailbox/query", "Mailbox/changes",
                                "Mailbox/queryChanges", "Core/echo", "Blob/copy"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(method_names, mailbox_args, st.just("c")).map(list), max_size=3)
       | json_values | st.binary(max_size=64))
def test_generated_requests_never_get_a_500_or_a_serverFail(driver: Driver, request_value: Any) -> None:
    if isinstance(request_value, list) and all(isinstance(c, list) and len(c) == 3 for c in request_value):
        body = orjson.dumps({"using": USING, "methodCalls": request_value})
    elif isinstance(request_value, bytes):
        body = request_value
    else:
        body = orjson.dumps(request_value)
    status, headers, out = driver.send("POST", "/jmap/api/", body, {"Content-Type": "application/json"})
    assert status in (200, 400), out
    if status == 400:
        assert headers["content-type"] == PROBLEM
        return
    for name, args, _ in orjson.loads(out)["methodResponses"]:
        assert name != "error" or args["type"] != "serverFail", args
