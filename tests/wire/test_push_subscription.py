"""PushSubscription (RFC 8620 §7.2) end to end: a real push endpoint receives the verification, then
encrypted StateChanges, which the test decrypts with the subscription's private key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tidings.push.subscription import utc_date
from tidings.push.webpush import b64url_decode

from ..helpers import CORE, JmapClient, LiveServer, make_tidings
from ..push.pushtools import Device, PushEndpoint
from .test_push_eventsource import add_mailbox


@pytest.fixture
def insecure_server(tmp_path: Path) -> Iterator[LiveServer]:
    tidings = make_tidings(tmp_path / "data", allow_insecure_push=True)
    tidings.accounts.add_user("alice", "secret")
    tidings.accounts.add_user("bob", "hunter2")
    live = LiveServer(tidings).start()
    yield live
    live.stop()
    tidings.close()


def push_call(client: JmapClient, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = client.request([[name, args, "p"]], using=[CORE])
    out_name, out, _ = response["methodResponses"][0]
    return out_name, out


def subscribe(client: JmapClient, url: str, **extra: Any) -> dict[str, Any]:
    name, out = push_call(
        client, "PushSubscription/set", {"create": {"s": {"deviceClientId": "dev-1", "url": url, **extra}}}
    )
    assert name == "PushSubscription/set", out
    return out


def verify(client: JmapClient, endpoint: PushEndpoint, device: Device | None = None) -> str:
    received = endpoint.next()
    body = device.decrypt(received.body) if device else received.body
    verification = orjson.loads(body)
    assert verification["@type"] == "PushVerification"
    _, out = push_call(
        client,
        "PushSubscription/set",
        {"update": {verification["pushSubscriptionId"]: {"verificationCode": verification["verificationCode"]}}},
    )
    assert out["updated"] == {verification["pushSubscriptionId"]: None}, out
    return str(verification["pushSubscriptionId"])


def test_verification_then_encrypted_state_change(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    device = Device()
    created = subscribe(alice, f"{endpoint.url}/push/abc", keys=device.keys, types=["Mailbox"])
    sub = created["created"]["s"]
    assert set(created) == {"created", "updated", "destroyed", "notCreated", "notUpdated", "notDestroyed"}
    assert sub["id"] and sub["expires"].endswith("Z") and sub["verificationCode"] is None

    # The PushVerification arrives first, encrypted, with the Web Push headers.
    received = endpoint.next()
    assert received.path == "/push/abc"
    assert received.headers["content-encoding"] == "aes128gcm"
    assert int(received.headers["ttl"]) > 0 and received.headers["urgency"] == "normal"
    assert received.headers["authorization"].startswith("vapid t=")
    key = alice.session["capabilities"]["urn:ietf:params:jmap:webpush-vapid"]["applicationServerKey"]
    assert received.headers["authorization"].endswith(f"k={key}")
    verification = orjson.loads(device.decrypt(received.body))
    assert verification["pushSubscriptionId"] == sub["id"]

    # Nothing is pushed until the code is set; a wrong code is refused.
    add_mailbox(alice, "Before verification")
    assert endpoint.nothing(0.7)
    _, out = push_call(alice, "PushSubscription/set", {"update": {sub["id"]: {"verificationCode": "wrong"}}})
    assert out["notUpdated"][sub["id"]]["type"] == "invalidProperties"
    _, out = push_call(
        alice, "PushSubscription/set", {"update": {sub["id"]: {"verificationCode": verification["verificationCode"]}}}
    )
    assert out["updated"] == {sub["id"]: None}

    new_state = add_mailbox(alice, "After verification")
    received = endpoint.next()
    change = orjson.loads(device.decrypt(received.body))
    assert change == {"@type": "StateChange", "changed": {alice.account_id: {"Mailbox": new_state}}}

    # /get: no url, no keys, and asking for them is forbidden.
    _, got = push_call(alice, "PushSubscription/get", {"ids": None})
    assert got["notFound"] == [] and "state" not in got and "accountId" not in got
    (listed,) = got["list"]
    assert "url" not in listed and "keys" not in listed
    assert listed["verificationCode"] == verification["verificationCode"] and listed["types"] == ["Mailbox"]
    name, error = push_call(alice, "PushSubscription/get", {"ids": None, "properties": ["id", "url"]})
    assert name == "error" and error["type"] == "forbidden"

    # Another user sees none of it.
    bob = insecure_server.client("bob", "hunter2")
    _, theirs = push_call(bob, "PushSubscription/get", {"ids": [sub["id"]]})
    assert theirs["list"] == [] and theirs["notFound"] == [sub["id"]]
    _, out = push_call(bob, "PushSubscription/set", {"destroy": [sub["id"]]})
    assert out["notDestroyed"][sub["id"]]["type"] == "notFound"


def test_unencrypted_subscription_gets_plain_json(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    subscribe(alice, f"{endpoint.url}/plain")
    verify(alice, endpoint)
    new_state = add_mailbox(alice, "Plain")
    received = endpoint.next()
    assert received.headers["content-type"] == "application/json" and "content-encoding" not in received.headers
    assert orjson.loads(received.body)["changed"][alice.account_id]["Mailbox"] == new_state


def test_types_filter_what_is_pushed(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    subscribe(alice, f"{endpoint.url}/email-only", types=["Email"])
    verify(alice, endpoint)
    add_mailbox(alice, "Not pushed")
    assert endpoint.nothing(0.7)


def test_gone_endpoint_removes_the_subscription(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    subscribe(alice, f"{endpoint.url}/gone")
    sub_id = verify(alice, endpoint)
    endpoint.statuses = [410]
    add_mailbox(alice, "Gone")
    endpoint.next()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _, got = push_call(alice, "PushSubscription/get", {"ids": [sub_id]})
        if got["notFound"] == [sub_id]:
            break
        time.sleep(0.05)
    assert got["notFound"] == [sub_id]


def test_failed_push_is_retried(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    subscribe(alice, f"{endpoint.url}/flaky")
    verify(alice, endpoint)
    endpoint.statuses = [503]
    new_state = add_mailbox(alice, "Retried")
    first, second = endpoint.next(), endpoint.next()
    assert first.body == second.body
    assert orjson.loads(second.body)["changed"][alice.account_id]["Mailbox"] == new_state


def test_expires_is_clamped_and_extendable(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    far = utc_date(int(time.time()) + 90 * 86400)
    created = subscribe(alice, f"{endpoint.url}/x", expires=far)["created"]["s"]
    endpoint.next()
    limit = int(time.time()) + 7 * 86400
    assert abs(_ts(created["expires"]) - limit) < 5
    sooner = utc_date(int(time.time()) + 3600)
    _, out = push_call(alice, "PushSubscription/set", {"update": {created["id"]: {"expires": sooner}}})
    assert out["updated"] == {created["id"]: None}
    _, out = push_call(alice, "PushSubscription/set", {"update": {created["id"]: {"expires": far}}})
    assert abs(_ts(out["updated"][created["id"]]["expires"]) - limit) < 5
    past = utc_date(int(time.time()) - 10)
    _, out = push_call(alice, "PushSubscription/set", {"update": {created["id"]: {"expires": past}}})
    assert out["notUpdated"][created["id"]]["type"] == "invalidProperties"


def test_immutable_and_invalid_properties(insecure_server: LiveServer, endpoint: PushEndpoint) -> None:
    alice = insecure_server.client("alice", "secret")
    sub_id = subscribe(alice, f"{endpoint.url}/y")["created"]["s"]["id"]
    endpoint.next()
    _, out = push_call(alice, "PushSubscription/set", {"update": {sub_id: {"url": f"{endpoint.url}/z"}}})
    assert out["notUpdated"][sub_id]["properties"] == ["url"]
    _, out = push_call(alice, "PushSubscription/set", {"update": {sub_id: {"deviceClientId": "other"}}})
    assert out["notUpdated"][sub_id]["properties"] == ["deviceClientId"]
    bad_creates = {
        "code": {"deviceClientId": "d", "url": f"{endpoint.url}/a", "verificationCode": "x"},
        "keys": {"deviceClientId": "d", "url": f"{endpoint.url}/a", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
        "nourl": {"deviceClientId": "d"},
        "scheme": {"deviceClientId": "d", "url": "ftp://example.com/"},
        "types": {"deviceClientId": "d", "url": f"{endpoint.url}/a", "types": [1]},
    }
    _, out = push_call(alice, "PushSubscription/set", {"create": bad_creates})
    assert set(out["notCreated"]) == set(bad_creates)
    assert all(e["type"] == "invalidProperties" for e in out["notCreated"].values())
    name, error = push_call(alice, "PushSubscription/set", {"accountId": alice.account_id, "create": {}})
    assert name == "error" and error["type"] == "invalidArguments"
    name, error = push_call(alice, "PushSubscription/set", {"ifInState": "1"})
    assert name == "error" and error["type"] == "invalidArguments"
    _, out = push_call(alice, "PushSubscription/set", {"destroy": [sub_id]})
    assert out["destroyed"] == [sub_id]


def test_subscriptions_and_the_vapid_key_survive_a_restart(tmp_path: Path, endpoint: PushEndpoint) -> None:
    tidings = make_tidings(tmp_path / "data", allow_insecure_push=True)
    tidings.accounts.add_user("alice", "secret")
    live = LiveServer(tidings).start()
    alice = live.client("alice", "secret")
    device = Device()
    subscribe(alice, f"{endpoint.url}/keep", keys=device.keys)
    verify(alice, endpoint, device)
    key = alice.session["capabilities"]["urn:ietf:params:jmap:webpush-vapid"]["applicationServerKey"]
    live.stop()
    tidings.close()

    tidings = make_tidings(tmp_path / "data", allow_insecure_push=True)
    live = LiveServer(tidings).start()
    try:
        alice = live.client("alice", "secret")
        assert alice.session["capabilities"]["urn:ietf:params:jmap:webpush-vapid"]["applicationServerKey"] == key
        new_state = add_mailbox(alice, "After restart")
        change = orjson.loads(device.decrypt(endpoint.next().body))
        assert change["changed"][alice.account_id]["Mailbox"] == new_state
    finally:
        live.stop()
        tidings.close()


def test_without_the_insecure_flag_local_urls_are_refused(alice: JmapClient, endpoint: PushEndpoint) -> None:
    for url in (
        f"{endpoint.url}/x",
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://localhost/x",
    ):
        _, out = push_call(alice, "PushSubscription/set", {"create": {"s": {"deviceClientId": "d", "url": url}}})
        assert out["notCreated"]["s"]["type"] == "invalidProperties", url
        assert out["notCreated"]["s"]["properties"] == ["url"]
    assert endpoint.nothing(0.3)


def test_expired_subscriptions_are_not_delivered_to_and_are_purged(
    insecure_server: LiveServer, endpoint: PushEndpoint
) -> None:
    alice = insecure_server.client("alice", "secret")
    sub_id = verify_after(alice, endpoint)
    tidings = insecure_server.tidings
    with tidings.store.push(write=True) as tx:
        tx.update(sub_id, {"expires_at": int(time.time()) - 1})
    add_mailbox(alice, "Too late")
    assert endpoint.nothing(0.7)
    _, got = push_call(alice, "PushSubscription/get", {"ids": [sub_id]})
    assert got["notFound"] == [sub_id]
    assert tidings.push.pusher.purge() == 1
    with tidings.store.push() as tx:
        assert tx.count(1) == 0


def verify_after(client: JmapClient, endpoint: PushEndpoint) -> str:
    subscribe(client, f"{endpoint.url}/v")
    return verify(client, endpoint)


def _ts(value: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def test_b64url_helper_round_trips() -> None:
    assert b64url_decode("AQID") == b"\x01\x02\x03"
