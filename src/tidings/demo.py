"""The demo mailbox: a generated, realistic set of threads for `tidings demo`.

`generate` writes the messages (deterministic for a given address, time and seed: conversations with
replies threaded by In-Reply-To/References, newsletters with an HTML part, notifications, attachments,
non-ASCII names and subjects, a draft and a junk message). `fill` delivers them through the one mail
ingest path (`mail.ingest`), in one write transaction, and only into an account that has never held
an email, so restarting the demo never adds them twice.
"""

from __future__ import annotations

import random
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from .mail.ingest import Prepared, ingest, prepare
from .store.base import Store

DAY = 86400


@dataclass(frozen=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True)
class DemoMessage:
    raw: bytes
    role: str  # the role of the mailbox it is filed in
    keywords: frozenset[str]
    received_at: int


PEOPLE = {
    "ines": Person("Inès Moreau", "ines.moreau@example.org"),
    "raj": Person("Raj Patel", "raj@example.org"),
    "zoe": Person("Zoë Martín", "zoe.martin@example.net"),
    "tom": Person("Tom Becker", "tom.becker@example.com"),
    "mei": Person("Mei Tanaka", "mei@example.net"),
    "sam": Person("Sam O'Connor", "sam.oconnor@example.com"),
    "lena": Person("Lena Fischer", "lena@example.org"),
    "ops": Person("Build Robot", "ci-noreply@example.com"),
    "billing": Person("Example Hosting Billing", "billing@example.com"),
    "shop": Person("Paper & Ink Shop", "orders@shop.example"),
    "news": Person("The Weekly Byte", "editor@newsletter.example"),
    "club": Person("Riverside Running Club", "hello@running.example"),
    "spam": Person("Prize Department", "winner@lottery.example"),
}

# One conversation: (subject, where the incoming messages are filed, flagged?, messages). A message is
# (sender key or "me", recipients, body, attachment name or None); "me" is the demo user.
Conversation = tuple[str, str, bool, list[tuple[str, list[str], str, str | None]]]

CONVERSATIONS: list[Conversation] = [
    (
        "Quarterly planning offsite",
        "inbox",
        True,
        [
            ("ines", ["me", "raj", "zoe"],
             "Hi all,\n\nThe offsite is booked for the 14th at the lake house. I attached a first agenda;\n"
             "please add anything you want to discuss by Friday.\n\nInès", "agenda.txt"),
            ("raj", ["ines", "me", "zoe"],
             "Thanks Inès. Could we add thirty minutes on the on-call rotation? It keeps coming up.\n\nRaj", None),
            ("me", ["ines", "raj", "zoe"],
             "Good idea. I can present the numbers from last quarter's incidents.\n", None),
            ("zoe", ["ines", "raj", "me"],
             "Works for me. I will sort out the car pool: who needs a seat?\n\nZoë", None),
        ],
    ),
    (
        "Lunch on Thursday?",
        "inbox",
        False,
        [
            ("tom", ["me"], "Are you free for lunch on Thursday? The new noodle place opened on Elm Street.\n", None),
            ("me", ["tom"], "Thursday works. Half past twelve?\n", None),
            ("tom", ["me"], "Perfect, see you there.\n", None),
        ],
    ),
    (
        "Code review: storage refactor",
        "inbox",
        False,
        [
            ("mei", ["me"],
             "I pushed the storage refactor for review. The main change is that every write now goes\n"
             "through one transaction with a savepoint per object. Tests pass locally.\n", None),
            ("me", ["mei"],
             "Looks good overall. Two questions: what happens when the savepoint rollback itself fails,\n"
             "and did you measure the write amplification on the big account?\n", None),
            ("mei", ["me"],
             "A failed rollback aborts the whole transaction, so nothing is half-written. Write\n"
             "amplification is about 4% on the big account; numbers in the attached file.\n", "benchmark.csv"),
            ("me", ["mei"], "Great, approved. Ship it.\n", None),
            ("mei", ["me"], "Merged. Thanks for the quick review!\n", None),
        ],
    ),
    (
        "Photos from the hike",
        "inbox",
        True,
        [
            ("zoe", ["me", "sam"],
             "What a day! Here is the one from the summit, the rest are in the shared album.\n", "summit.png"),
            ("sam", ["zoe", "me"], "Amazing light. Same trail next month?\n", None),
        ],
    ),
    (
        "Re: Apartment viewing on Saturday",
        "inbox",
        False,
        [
            ("lena", ["me"],
             "The landlord confirmed Saturday at 11:00. Bring an ID and the last three payslips.\n"
             "The address is 12 Harbour Road, second floor.\n", None),
        ],
    ),
    (
        "Conference talk proposal",
        "archive",
        False,
        [
            ("me", ["raj"],
             "I drafted an abstract for the conference: \"Sync without polling: lessons from JMAP\".\n"
             "Would you review it before the deadline?\n", None),
            ("raj", ["me"],
             "Nice title. I would cut the second paragraph and lead with the battery numbers.\n", None),
            ("me", ["raj"], "Done, submitted. Fingers crossed.\n", None),
            ("raj", ["me"], "Accepted! Congratulations.\n", None),
        ],
    ),
    (
        "Book club: next pick",
        "archive",
        False,
        [
            ("sam", ["me", "lena", "tom"], "Next month's pick: vote between the lighthouse novel and the biography.\n",
             None),
            ("lena", ["sam", "me", "tom"], "Lighthouse, please. I need something with waves in it.\n", None),
            ("tom", ["sam", "me", "lena"], "Biography, but I will read whatever wins.\n", None),
        ],
    ),
    (
        "Überweisung für die Miete",
        "inbox",
        False,
        [
            ("lena", ["me"], "Hallo! Kannst du mir deinen Anteil der Miete bis Montag überweisen? Danke!\n", None),
            ("me", ["lena"], "Ist unterwegs. Schönes Wochenende!\n", None),
        ],
    ),
]

NOTIFICATIONS = [
    ("ops", "Build #{n} passed on main", "All 212 checks passed in 4m 12s.\n\nCommit: refactor the change log\n"),
    ("ops", "Build #{n} failed on main",
     "1 of 212 checks failed: test_queries_sorted_by_subject\n\nAssertionError: 'Apple' != 'apple'\n"),
    ("shop", "Your order #{n} has shipped",
     "Good news! Your order of 2 notebooks and 1 fountain pen is on its way.\nTracking number: EX{n}839201.\n"),
    ("club", "Sunday long run: meeting point changed",
     "This Sunday we meet at the north gate of the park at 8:00, not the boathouse.\n"),
]

NEWSLETTER_TOPICS = [
    ("Why your sync protocol should push", "Polling wastes battery; push channels send a state change instead."),
    ("A gentle guide to MIME", "Multipart messages are trees; a client shows the text parts and lists the rest."),
    ("Full-text search, the SQLite way", "FTS5 indexes tokens, and prefix queries make search-as-you-type fast."),
]


def _png() -> bytes:
    """A small valid PNG (a 16x16 gradient), so image attachments open in a viewer."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(v for x in range(16) for v in (x * 16, y * 16, 200)) for y in range(16))
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _pdf(text: str) -> bytes:
    """A one-page PDF showing one line of text."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


ATTACHMENTS: dict[str, tuple[str, bytes]] = {
    "agenda.txt": (
        "text/plain",
        b"Offsite agenda\n\n09:00 Welcome and coffee\n09:30 Review of the quarter\n11:00 Roadmap\n"
        b"12:30 Lunch by the lake\n14:00 Team processes\n16:00 Walk\n",
    ),
    "benchmark.csv": ("text/csv", b"account,emails,writes_before,writes_after\nsmall,1000,1000,1040\n"
                                  b"big,250000,250000,260000\n"),
    "summit.png": ("image/png", _png()),
    "invoice.pdf": ("application/pdf", _pdf("Invoice: 3 months of hosting, 36.00 EUR")),
}


def _message(
    sender: Person,
    to: list[Person],
    subject: str,
    date: int,
    message_id: str,
    text: str,
    *,
    references: list[str] | None = None,
    html: str | None = None,
    attachment: str | None = None,
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender.name, sender.email))
    msg["To"] = ", ".join(formataddr((p.name, p.email)) for p in to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(date, UTC))
    msg["Message-ID"] = message_id
    if references:
        msg["In-Reply-To"] = references[-1]
        msg["References"] = " ".join(references)
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        media_type, data = ATTACHMENTS[attachment]
        maintype, _, subtype = media_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=attachment)
    # Fixed boundaries (the library draws random ones), so the same input gives the same bytes.
    tag = zlib.crc32(message_id.encode())
    for number, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_demo_{tag:08x}_{number}")
    return msg.as_bytes()


def generate(address: str, now: int | None = None, *, seed: int = 8621) -> list[DemoMessage]:
    """The demo mailbox of `address`, newest messages a little before `now`, oldest some weeks back."""
    now = int(time.time()) if now is None else now
    rng = random.Random(seed)
    me = Person("Demo User", address)
    people = {**PEOPLE, "me": me}
    out: list[DemoMessage] = []

    def file(raw: bytes, sender: str, role: str, date: int, flagged: bool = False) -> None:
        keywords = set()
        if sender == "me":
            role = "sent"
        # Anything older than two days has been read; the last few days are still unread.
        if sender == "me" or now - date > 2 * DAY:
            keywords.add("$seen")
        if flagged:
            keywords.add("$flagged")
        out.append(DemoMessage(raw, role, frozenset(keywords), date))

    def ids(prefix: str, count: int) -> Iterator[str]:
        for i in range(count):
            yield f"<demo.{prefix}.{i}@example.org>"

    # Conversations, spread over the last five weeks, replies a few hours apart.
    for number, (subject, role, flagged, messages) in enumerate(CONVERSATIONS):
        start = now - rng.randint(number * 4 * DAY // 2, (number * 4 + 3) * DAY // 2) - 6 * 3600
        date = start
        references: list[str] = []
        for index, ((sender, recipients, body, attachment), message_id) in enumerate(
            zip(messages, ids(f"c{number}", len(messages)), strict=True)
        ):
            date += rng.randint(1800, 5 * 3600) if index else 0
            date = min(date, now - 600 * (len(messages) - index))
            raw = _message(
                people[sender],
                [people[r] for r in recipients],
                subject if index == 0 or subject.startswith("Re:") else "Re: " + subject,
                date,
                message_id,
                body + ("\n-- \nDemo User\n" if sender == "me" else ""),
                references=list(references) or None,
                attachment=attachment,
            )
            file(raw, sender, role, date, flagged and index == 0)
            references.append(message_id)

    # Notifications: one thread each, a few of each kind.
    for number in range(12):
        sender, subject, body = NOTIFICATIONS[number % len(NOTIFICATIONS)]
        date = now - rng.randint(1, 34 * DAY)
        serial = 4000 + number * 7
        raw = _message(people[sender], [me], subject.format(n=serial), date, f"<demo.n{number}@example.com>",
                       body.format(n=serial))
        file(raw, sender, "inbox" if number % 3 else "archive", date)

    # Newsletters, with an HTML alternative.
    for number, (title, lead) in enumerate(NEWSLETTER_TOPICS):
        date = now - (number * 7 + 1) * DAY - 3 * 3600
        text = f"{title}\n\n{lead}\n\nRead the full issue on our site. Unsubscribe any time.\n"
        html = (f"<html><body><h1>{title}</h1><p>{lead}</p><p><a href=\"https://newsletter.example/\">"
                "Read the full issue</a></p></body></html>")
        raw = _message(people["news"], [me], f"The Weekly Byte: {title}", date, f"<demo.w{number}@example.com>",
                       text, html=html)
        file(raw, "news", "inbox", date)

    # An invoice with a PDF, a junk message and a draft.
    date = now - 9 * DAY
    raw = _message(people["billing"], [me], "Invoice INV-2207 for your hosting plan", date,
                   "<demo.invoice@example.com>",
                   "Hello,\n\nPlease find attached the invoice for the next three months: 36.00 EUR,\n"
                   "charged to your card on file.\n", attachment="invoice.pdf")
    file(raw, "billing", "inbox", date, flagged=True)
    date = now - 3 * DAY
    raw = _message(people["spam"], [me], "You have WON a prize!!!", date, "<demo.junk@lottery.example>",
                   "Congratulations! Send us your bank details to claim your prize.\n")
    file(raw, "spam", "junk", date)
    date = now - 5 * 3600
    raw = _message(me, [people["tom"]], "Weekend plans", date, "<demo.draft@example.org>",
                   "Hi Tom,\n\nAre you around on Saturday? I was thinking of\n")
    out.append(DemoMessage(raw, "drafts", frozenset({"$draft", "$seen"}), date))
    out.sort(key=lambda m: m.received_at)
    return out


def fill(store: Store, account_id: str, address: str, now: int | None = None) -> int:
    """Deliver the demo mailbox into an account that has never held an email; returns how many were
    added (0 when the account already has, or had, mail: restarting the demo adds nothing)."""
    with store.read(account_id) as tx:
        if tx.state("Email") != "0":
            return 0
    messages = generate(address, now)
    # Blobs are written outside the transaction (they are immutable and content-addressed).
    prepared: list[tuple[DemoMessage, Prepared]] = [(m, prepare(store.blobs, m.raw)) for m in messages]
    with store.write(account_id) as tx:
        if tx.state("Email") != "0":
            return 0
        roles = {row.role: row.id for row in tx.mailboxes.all() if row.role}
        for message, ready in prepared:
            mailbox = roles.get(message.role, roles.get("inbox"))
            if mailbox is None:
                continue
            ingest(tx, ready, {mailbox}, message.keywords, message.received_at)
    return len(prepared)
