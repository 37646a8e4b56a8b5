"""Every message of the shared corpus imports and answers Email/get with every property (RFC 8621 §4.1),
and its raw bytes come back exactly. One server, batched imports."""

from __future__ import annotations

from typing import Any

import pytest

from ..helpers import JmapClient
from .mailtools import ALL_BODY_PROPERTIES, ALL_PROPERTIES, corpus_messages, download, requires_corpus, roles, upload

pytestmark = requires_corpus
BATCH = 50


@pytest.fixture(scope="module")
def imported(shared_alice: JmapClient) -> dict[str, Any]:
    messages = corpus_messages()
    inbox = roles(shared_alice)["inbox"]
    created: dict[str, dict[str, Any]] = {}
    rejected: dict[str, dict[str, Any]] = {}
    for start in range(0, len(messages), BATCH):
        batch = messages[start:start + BATCH]
        emails = {str(n): {"blobId": upload(shared_alice, raw), "mailboxIds": {inbox: True}}
                  for n, (_, raw) in enumerate(batch)}
        result = shared_alice.ok("Email/import", {"emails": emails})
        for n, (label, _) in enumerate(batch):
            if result["created"] and str(n) in result["created"]:
                created[label] = result["created"][str(n)]
            else:
                rejected[label] = result["notCreated"][str(n)]
    return {"messages": dict(messages), "created": created, "rejected": rejected}


def test_corpus_is_large(imported: dict[str, Any]) -> None:
    assert len(imported["messages"]) > 350


def test_every_message_imports(imported: dict[str, Any]) -> None:
    # A message the parser cannot make sense of still imports, its raw bytes kept (the rule).
    assert imported["rejected"] == {}


def _part_ids(part: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    if part.get("partId") is not None:
        out[part["partId"]] = part
    for sub in part.get("subParts") or ():
        _part_ids(sub, out)


def test_every_message_answers_get_with_every_property(shared_alice: JmapClient, imported: dict[str, Any]) -> None:
    by_id = {c["id"]: label for label, c in imported["created"].items()}
    ids = list(by_id)
    for start in range(0, len(ids), BATCH):
        result = shared_alice.ok("Email/get", {
            "ids": ids[start:start + BATCH],
            "properties": [*ALL_PROPERTIES, "header:Subject:asText", "header:From:asAddresses:all"],
            "bodyProperties": ALL_BODY_PROPERTIES, "fetchAllBodyValues": True, "maxBodyValueBytes": 4096,
        })
        assert result["notFound"] == []
        for email in result["list"]:
            label = by_id[email["id"]]
            raw = imported["messages"][label]
            assert set(email) >= set(ALL_PROPERTIES), label
            assert email["size"] == len(raw), label
            parts: dict[str, dict[str, Any]] = {}
            _part_ids(email["bodyStructure"], parts)
            # Every part listed in textBody/htmlBody/attachments is a leaf of bodyStructure (RFC 8621 §4.1.4).
            for key in ("textBody", "htmlBody", "attachments"):
                for part in email[key]:
                    assert part["partId"] in parts, (label, key)
                    assert not part["type"].startswith("multipart/"), (label, key)
            for part_id, value in email["bodyValues"].items():
                assert part_id in parts, label
                assert parts[part_id]["type"].startswith("text/"), label
                assert len(value["value"].encode()) <= 4096, label
                assert isinstance(value["isEncodingProblem"], bool) and isinstance(value["isTruncated"], bool)
            assert isinstance(email["preview"], str) and len(email["preview"]) <= 256, label
            assert email["hasAttachment"] in (True, False)


def test_raw_download_is_exact(shared_alice: JmapClient, imported: dict[str, Any]) -> None:
    for label, created in imported["created"].items():
        assert download(shared_alice, created["blobId"]) == imported["messages"][label], label


def test_attachment_downloads_have_their_size(shared_alice: JmapClient, imported: dict[str, Any]) -> None:
    ids = [c["id"] for c in imported["created"].values()]
    checked = 0
    for start in range(0, len(ids), BATCH):
        listed = shared_alice.ok("Email/get", {"ids": ids[start:start + BATCH], "properties": ["attachments"],
                                               "bodyProperties": ["blobId", "size"]})["list"]
        for email in listed:
            for part in email["attachments"]:
                body = download(shared_alice, part["blobId"])
                assert len(body) == part["size"], (email["id"], part)
                checked += 1
    assert checked > 100
