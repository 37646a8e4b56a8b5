"""The event source (RFC 8620 §7.3) over a real socket: a reader sees changes made by another client."""

from __future__ import annotations

import threading
import time

import httpx

from ..helpers import JmapClient, LiveServer
from ..push.pushtools import json_of, parse_events


class EventReader:
    """Reads an event stream in a thread, as a browser's EventSource would."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self.events: list[dict[str, str]] = []
        self.status = 0
        self.headers: dict[str, str] = {}
        self._buffer = ""
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(url, headers or {}), daemon=True)
        self.thread.start()
        assert self._ready.wait(10)

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self.client.stream("GET", url, headers={"Accept": "text/event-stream", **headers}) as response:
                self.status = response.status_code
                self.headers = dict(response.headers)
                self._ready.set()
                for chunk in response.iter_text():
                    with self._lock:
                        self._buffer += chunk
                        complete, _, self._buffer = self._buffer.rpartition("\n\n")
                        if complete:
                            self.events.extend(parse_events(complete))
                    if self._stop:
                        return
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()

    def wait_for(self, name: str, count: int = 1, timeout: float = 10) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [e for e in self.events if e.get("event") == name]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {name} event; got {self.events}")

    def close(self) -> None:
        self._stop = True
        self.client.close()


def _es_url(server: LiveServer, types: str = "*", closeafter: str = "no", ping: int = 0, extra: str = "") -> str:
    return f"{server.url}/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}{extra}"


def add_mailbox(client: JmapClient, name: str) -> str:
    """A change made through the HTTP API; returns the new Mailbox state."""
    created = client.ok("Mailbox/set", {"create": {"n": {"name": name}}})
    assert created["created"], created
    return str(created["newState"])


def test_reader_sees_a_change_made_through_another_connection(server: LiveServer, alice: JmapClient) -> None:
    reader = EventReader(_es_url(server), {"Authorization": alice.http.headers["Authorization"]})
    try:
        assert reader.status == 200
        assert reader.headers["content-type"].startswith("text/event-stream")
        time.sleep(0.2)
        new_state = add_mailbox(alice, "Projects")
        (event,) = reader.wait_for("state")
        change = json_of(event)
        assert change == {"@type": "StateChange", "changed": {alice.account_id: {"Mailbox": new_state}}}
        assert event["id"]  # §7.3: an id that encodes the state, for resuming
    finally:
        reader.close()


def test_other_users_changes_are_not_seen(server: LiveServer, alice: JmapClient, bob: JmapClient) -> None:
    reader = EventReader(_es_url(server), {"Authorization": alice.http.headers["Authorization"]})
    try:
        add_mailbox(bob, "Bob's")
        time.sleep(0.5)
        assert [e for e in reader.events if e.get("event") == "state"] == []
    finally:
        reader.close()


def test_types_filter_and_closeafter_state(server: LiveServer, alice: JmapClient) -> None:
    auth = {"Authorization": alice.http.headers["Authorization"]}
    unrelated = EventReader(_es_url(server, types="Email"), auth)
    closing = EventReader(_es_url(server, types="Mailbox,Email", closeafter="state"), auth)
    try:
        time.sleep(0.2)
        add_mailbox(alice, "Filtered")
        closing.wait_for("state")
        closing.thread.join(5)
        assert not closing.thread.is_alive(), "closeafter=state ends the response after the event"
        time.sleep(0.3)
        assert [e for e in unrelated.events if e.get("event") == "state"] == []
    finally:
        unrelated.close()
        closing.close()


def test_ping_interval_is_clamped_and_reported(server: LiveServer, alice: JmapClient) -> None:
    reader = EventReader(_es_url(server, ping=1), {"Authorization": alice.http.headers["Authorization"]})
    try:
        (ping,) = reader.wait_for("ping", timeout=10)
        assert json_of(ping) == {"interval": 5}  # asked for 1, the server's minimum is 5
        assert "id" not in ping  # §7.3: a ping "MUST NOT set a new event id"
    finally:
        reader.close()


def test_reconnect_with_last_event_id_gets_missed_changes(server: LiveServer, alice: JmapClient) -> None:
    auth = {"Authorization": alice.http.headers["Authorization"]}
    first = EventReader(_es_url(server), auth)
    time.sleep(0.3)
    first.close()
    with first._lock:
        last_id = next(e["id"] for e in first.events if "id" in e)
    new_state = add_mailbox(alice, "While away")
    second = EventReader(_es_url(server), {**auth, "Last-Event-ID": last_id})
    try:
        (event,) = second.wait_for("state")
        assert json_of(event)["changed"] == {alice.account_id: {"Mailbox": new_state}}
    finally:
        second.close()


def test_browser_token_is_single_use_and_needs_credentials(server: LiveServer, alice: JmapClient) -> None:
    assert httpx.post(f"{server.url}/jmap/access-token").status_code == 401
    issued = alice.http.post("/jmap/access-token")
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert issued.json()["expires"].endswith("Z")
    reader = EventReader(_es_url(server, extra=f"&access_token={token}"))
    try:
        assert reader.status == 200
        time.sleep(0.2)
        new_state = add_mailbox(alice, "Via token")
        (event,) = reader.wait_for("state")
        assert json_of(event)["changed"][alice.account_id]["Mailbox"] == new_state
    finally:
        reader.close()
    again = httpx.get(_es_url(server, closeafter="state", extra=f"&access_token={token}"), timeout=5)
    assert again.status_code == 401
    assert httpx.get(_es_url(server, extra="&access_token=tdp_forged"), timeout=5).status_code == 401


def test_bad_arguments_are_400(server: LiveServer, alice: JmapClient) -> None:
    response = alice.http.get("/jmap/eventsource/?types=*&closeafter=maybe&ping=0")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
