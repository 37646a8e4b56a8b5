"""jmax (PyPI), a command-line JMAP client, run as a person runs it: one process per command, JSON out.

The journey: mailboxes, inbox, search, read a message, flag, mark read, move, download attachments,
and send through EmailSubmission to a test SMTP sink.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..smtp.sink import Sink
from .conftest import Demo, wait_for


class Jmax:
    def __init__(self, demo: Demo, home: Path, user: str | None = None, password: str | None = None) -> None:
        self.env = {
            **os.environ,
            "HOME": str(home),
            "JMAX_AUTH_PATH": str(home / "auth.json"),
            "JMAP_URL": demo.url,
            "JMAP_USER": user or demo.username,
            "JMAP_PASSWORD": password or demo.password,
        }

    def run(self, *args: str, expect: int = 0) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "jmax.cli", *args], capture_output=True, text=True, env=self.env, timeout=60
        )
        assert result.returncode == expect, f"jmax {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args))


def test_jmax_journey(demo: Demo, tmp_path: Path) -> None:
    jmax = Jmax(demo, tmp_path)

    # Mailboxes with their counts.
    mailboxes = {m["role"]: m for m in jmax.json("mailboxes")}
    assert {"inbox", "drafts", "sent", "archive", "junk", "trash"} <= set(mailboxes)
    inbox = mailboxes["inbox"]
    assert inbox["totalEmails"] > 10 and inbox["unreadEmails"] > 0

    # The inbox, newest first; its count and its unread part agree with the mailbox's counts.
    rows = jmax.json("inbox", "--limit", "200")
    assert len(rows) == inbox["totalEmails"]
    assert [r["receivedAt"] for r in rows] == sorted((r["receivedAt"] for r in rows), reverse=True)
    assert int(jmax.run("inbox", "--count")) == inbox["totalEmails"]
    unread = jmax.json("inbox", "--unread")
    assert len(unread) == inbox["unreadEmails"] and all(r["unread"] for r in unread)
    assert len(jmax.json("inbox", "--since", "3d")) < len(rows)
    # jmax writes dates with Python's isoformat: microseconds, trailing zeros and all. RFC 8620 §1.4
    # forbids only a zero fraction, so ".500000Z" is a valid UTCDate (Tidings once refused it).
    assert len(jmax.json("inbox", "--since", "2000-01-01T00:00:00.500000Z")) == len(rows)

    # Search: free text, sender, mailbox; nothing found exits 1, as jmax documents.
    found = jmax.json("search", "offsite")
    assert found and all("offsite" in r["subject"].lower() for r in found)
    first = next(r for r in found if r["hasAttachment"])
    # jmax prints addresses with email.utils.formataddr, which RFC 2047-encodes a non-ASCII name; the
    # server sent the decoded name (RFC 8621 §4.1.2.3), as `get` shows below.
    assert first["from"] == "=?utf-8?q?In=C3=A8s_Moreau?= <ines.moreau@example.org>"
    from_raj = jmax.json("search", "--from", "raj@example.org")
    assert from_raj and all("raj@example.org" in r["from"] for r in from_raj)
    assert jmax.json("search", "--in", "junk", "prize")[0]["subject"] == "You have WON a prize!!!"
    jmax.run("search", "no-such-word-anywhere", expect=1)

    # Read one message: its text body, its headers, its subject.
    body = jmax.run("get", first["id"], "--body")
    assert "The offsite is booked for the 14th" in body
    headers = jmax.json("get", first["id"], "--headers")
    assert headers["from"] == [{"name": "Inès Moreau", "email": "ines.moreau@example.org"}]
    assert any(h["name"] == "Message-ID" for h in headers["headers"])
    assert jmax.run("get", first["id"], "--subject").strip() == "Quarterly planning offsite"
    whole = jmax.json("get", first["id"])  # every default property (RFC 8621 §4.2)
    assert whole["threadId"] == first["threadId"] and whole["size"] > 0 and whole["preview"]

    # Flag, then mark read and unread again.
    message = unread[0]
    jmax.run("flag", message["id"])
    jmax.run("read", message["id"])
    keywords = jmax.json("get", message["id"])["keywords"]
    assert keywords.get("$flagged") is True and keywords.get("$seen") is True
    jmax.run("unflag", message["id"])
    jmax.run("unread", message["id"])
    assert jmax.json("get", message["id"])["keywords"] == {}

    # Move to the archive, by name; the counts follow.
    jmax.run("move", first["id"], "--to", "Archive")
    assert jmax.json("get", first["id"])["mailboxIds"] == {mailboxes["archive"]["id"]: True}
    after = {m["role"]: m for m in jmax.json("mailboxes")}
    assert after["inbox"]["totalEmails"] == inbox["totalEmails"] - 1
    assert after["archive"]["totalEmails"] == mailboxes["archive"]["totalEmails"] + 1
    assert first["id"] in {r["id"] for r in jmax.json("search", "--in", "archive", "offsite")}

    # Attachments: metadata, then the bytes, to a file and to standard output.
    attachments = jmax.json("get", first["id"], "--attachments")["attachments"]
    assert [(a["name"], a["type"]) for a in attachments] == [("agenda.txt", "text/plain")]
    target = tmp_path / "agenda.txt"
    jmax.run("attachment", first["id"], "agenda.txt", "-o", str(target))
    assert target.read_text().startswith("Offsite agenda")
    invoice = jmax.json("search", "invoice")[0]
    pdf = subprocess.run(
        [sys.executable, "-m", "jmax.cli", "attachment", invoice["id"], "invoice.pdf", "-o", "-"],
        capture_output=True,
        env=jmax.env,
        timeout=60,
        check=True,
    ).stdout
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")

    # Trash, the gentle delete.
    jmax.run("trash", message["id"])
    assert jmax.json("get", message["id"])["mailboxIds"] == {mailboxes["trash"]["id"]: True}


def test_jmax_sends(mail_demo: Demo, sink: Sink, tmp_path: Path) -> None:
    """`jmax send`: Email/set creates the draft, EmailSubmission/set sends it (RFC 8621 §7.5); the
    message reaches the SMTP sink and is filed in Sent."""
    body = tmp_path / "body.txt"
    body.write_text("Thursday at half past twelve works for me.\n")
    send = ("send", "--to", "Tom Becker <tom.becker@example.com>", "--subject", "Lunch", "--body-file", str(body))

    # A client bug: jmax fetches the account's identities, then writes its login name, not the chosen
    # identity's email, into From. With the login "demo" that is not even an address; the server must
    # refuse a From the user may not send as (RFC 8621 §7.5, forbiddenFrom; §6: an Identity is what
    # the user may send as). jmax works where the login is the address, as below.
    refused = subprocess.run([sys.executable, "-m", "jmax.cli", *send], capture_output=True, text=True,
                             env=Jmax(mail_demo, tmp_path).env, timeout=60)
    assert refused.returncode == 2 and "forbiddenFrom" in refused.stderr
    login = "lena@localhost"
    subprocess.run([sys.executable, "-m", "tidings.cli", "user", "add", login, "--password", "pw",
                    "--data", str(mail_demo.data)], check=True, capture_output=True)
    jmax = Jmax(mail_demo, tmp_path, user=login, password="pw")

    out = jmax.json(*send)
    assert out["emailId"] and out["submissionId"]
    received = wait_for(lambda: sink.handler.messages)[0]
    assert received.mail_from == login and received.rcpt_tos == ["tom.becker@example.com"]
    assert b"Subject: Lunch" in received.content and b"half past twelve" in received.content
    sent = jmax.json("get", out["emailId"])
    mailboxes = {m["role"]: m["id"] for m in jmax.json("mailboxes")}
    assert sent["mailboxIds"] == {mailboxes["sent"]: True}
    assert sent["keywords"] == {"$seen": True}
