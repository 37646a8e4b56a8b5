"""`tidings push rotate-vapid` (RFC 9749 §5) and `tidings token revoke`, run as real commands against
the store of a running server: the server takes up the new key, advertises it, signs with it, and the
subscriptions made for the old key (or with the revoked token) are gone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ..helpers import CORE, JmapClient, LiveServer, make_tidings
from ..stores import store_for
from ..wire.test_push_eventsource import add_mailbox
from ..wire.test_push_subscription import push_call, subscribe, verify
from .pushtools import PushEndpoint

TIDINGS = Path(sys.executable).with_name("tidings")
VAPID = "urn:ietf:params:jmap:webpush-vapid"


def tidings_command(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_STORE"] = store_for(data)
    return subprocess.run(
        [str(TIDINGS), *args, "--data", str(data)], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data: Path) -> Iterator[LiveServer]:
    tidings = make_tidings(data, allow_insecure_push=True)
    tidings.accounts.add_user("alice", "secret")
    tidings.push.vapid_recheck = 0  # look at the stored key on every occasion, not every 5 seconds
    live = LiveServer(tidings).start()
    yield live
    live.stop()
    tidings.close()


def test_rotation_erases_subscriptions_and_the_server_takes_up_the_new_key(
    server: LiveServer, data: Path, endpoint: PushEndpoint
) -> None:
    alice = server.client("alice", "secret")
    old_key = alice.session["capabilities"][VAPID]["applicationServerKey"]
    old_state = alice.session["state"]
    subscribe(alice, f"{endpoint.url}/old")
    old_sub = verify(alice, endpoint)

    rotated = tidings_command(data, "push", "rotate-vapid")
    assert rotated.returncode == 0, rotated.stderr
    assert "1 push subscription(s) erased" in rotated.stdout

    # The API's sessionState changes, which tells the client to fetch the session again ...
    response = alice.request([["Core/echo", {}, "e"]], using=[CORE])
    assert response["sessionState"] != old_state
    session = JmapClient(server.url, alice.http.headers["Authorization"]).session
    new_key = session["capabilities"][VAPID]["applicationServerKey"]
    assert new_key != old_key and new_key in rotated.stdout and session["state"] == response["sessionState"]
    # ... where its subscription is gone, and nothing more is sent to it.
    _, got = push_call(alice, "PushSubscription/get", {"ids": [old_sub]})
    assert got["notFound"] == [old_sub]
    add_mailbox(alice, "After the rotation")
    assert endpoint.nothing(0.7)

    # Subscribing again: the pushes are signed with the new key.
    subscribe(alice, f"{endpoint.url}/new")
    received = endpoint.next()
    assert received.path == "/new" and received.headers["authorization"].endswith(f"k={new_key}")
    verification = orjson.loads(received.body)
    _, out = push_call(
        alice,
        "PushSubscription/set",
        {"update": {verification["pushSubscriptionId"]: {"verificationCode": verification["verificationCode"]}}},
    )
    assert out["updated"]
    add_mailbox(alice, "Signed with the new key")
    assert endpoint.next().headers["authorization"].endswith(f"k={new_key}")


def test_token_revoke_command_destroys_the_token_subscriptions(
    server: LiveServer, data: Path, endpoint: PushEndpoint
) -> None:
    phone = JmapClient(server.url, "Bearer " + server.tidings.accounts.create_token("alice", "phone"))
    subscribe(phone, f"{endpoint.url}/phone")
    verify(phone, endpoint)
    revoked = tidings_command(data, "token", "revoke", "alice", "phone")
    assert revoked.returncode == 0, revoked.stderr
    with server.tidings.store.push() as tx:
        assert tx.count(1) == 0
    add_mailbox(server.client("alice", "secret"), "After the revocation")
    assert endpoint.nothing(0.7)
