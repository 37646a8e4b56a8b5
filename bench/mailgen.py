"""A deterministic generator of a realistic mailbox, for the mail benchmarks.

Conversations of one to a few dozen messages (replies carry Message-ID, In-Reply-To, References and
"Re:" subjects, some with a [list] tag), interleaved in time over three years; plain text, HTML
(multipart/alternative) and attachments of sizes from a kilobyte to a few hundred; RFC 2047 encoded
names and subjects. The same (count, seed) always gives the same octets.

    python -m bench.mailgen --messages 10000 out.mbox
"""

from __future__ import annotations

import argparse
import base64
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

START = 1_700_000_000  # November 2023
SPAN = 3 * 365 * 86400
_PARAGRAPH = (  # reads better than a list
    "the of and to in is for on that with as at by from this be are it or an was we will can our have not "
    "meeting budget quarterly report release schedule deadline review draft proposal invoice contract team "
    "project server database migration backup network deploy staging production incident customer support "
    "design roadmap feature bug patch test coverage benchmark latency memory storage search index thread "
    "conference travel hotel flight agenda minutes lunch coffee offsite holiday vacation birthday garden "
    "recipe library museum concert ticket weather weekend family school homework piano football cycling "
    "approval signature payment receipt shipping delivery warehouse inventory forecast analysis summary "
    "question answer update reminder follow-up feedback priority urgent tomorrow friday morning afternoon"
)
WORDS = _PARAGRAPH.split()
ACCENTED = ["café", "naïve", "résumé", "Zürich", "São Paulo", "Ångström", "déjà vu", "piñata", "Kraków"]
FIRST = ["Alice", "Bob", "Chloé", "Dmitri", "Eva", "François", "Grete", "Hiro", "Inès", "Jürgen", "Kai", "Léa",
         "Marta", "Nils", "Olga", "Pål", "Quentin", "Rosa", "Søren", "Tomás", "Uma", "Vera", "Wen", "Zoë"]
LAST = ["Anderson", "Brontë", "Castro", "Dubois", "Eriksson", "Fischer", "García", "Hansen", "Ivanova", "Jansen",
        "Kowalski", "Larsen", "Müller", "Novak", "O'Brien", "Petit", "Rossi", "Schäfer", "Tanaka", "Weiß"]
LISTS = ["dev", "ops", "announce", "book-club"]


def _vocabulary(size: int = 6000) -> tuple[list[str], list[float]]:
    """Common words, then made-up rarer ones, with Zipf-like cumulative weights (as real text has)."""
    rng = random.Random(0)
    syllables = ["ka", "lo", "mi", "ver", "tan", "qui", "zo", "bra", "nel", "sto", "ph", "rix", "dal", "mor",
                 "es", "un", "gri", "fa", "tel", "os"]
    words = list(WORDS)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 10)
        weights.append(total)
    return words, weights


VOCABULARY, CUMULATIVE = _vocabulary()


@dataclass(frozen=True)
class Meta:
    """Everything about one message except its text, which is drawn from its own seed when written."""

    number: int
    thread: int
    position: int  # 0 for the first message of its conversation
    date: int
    subject: str
    sender: int
    recipients: tuple[int, ...]
    parent: int | None
    ancestors: tuple[int, ...]


def _person(index: int) -> tuple[str, str]:
    first, last = FIRST[index % len(FIRST)], LAST[(index // len(FIRST)) % len(LAST)]
    return f"{first} {last}", f"{first.lower()}.{index}@example.org".encode("ascii", "ignore").decode()


def _thread_length(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.45:
        return 1
    if roll < 0.85:
        return rng.randint(2, 5)
    if roll < 0.98:
        return rng.randint(6, 20)
    return rng.randint(21, 60)


def plan(count: int, seed: int = 1) -> list[Meta]:
    """The messages in delivery order (by date): conversations interleaved in time."""
    rng = random.Random(seed)
    metas: list[Meta] = []
    thread = 0
    while len(metas) < count:
        length = min(_thread_length(rng), count - len(metas))
        topic = " ".join(rng.choice(WORDS[40:]) for _ in range(rng.randint(2, 5))).capitalize()
        if rng.random() < 0.08:
            topic += " " + rng.choice(ACCENTED)
        tag = f"[{rng.choice(LISTS)}] " if rng.random() < 0.2 else ""
        people = [rng.randrange(400) for _ in range(rng.randint(2, 5))]
        date = START + rng.randrange(SPAN)
        first = len(metas)
        for position in range(length):
            parent = None if position == 0 else first + rng.randrange(position)
            ancestors: tuple[int, ...] = ()
            if parent is not None:
                ancestors = (*metas[parent].ancestors, parent)[-10:]
            subject = tag + topic if position == 0 else "Re: " + tag + topic
            sender = people[position % len(people)]
            metas.append(Meta(len(metas), thread, position, date, subject, sender,
                              tuple(p for p in people if p != sender)[:3], parent, ancestors))
            date += rng.randint(120, 3 * 86400)
        thread += 1
    # Delivery order is by date; message numbers (and Message-IDs) stay those of the plan.
    return sorted(metas, key=lambda m: (m.date, m.number))


def _encode_header(text: str) -> str:
    if text.isascii():
        return text
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _address(index: int) -> str:
    name, email = _person(index)
    return f"{_encode_header(name)} <{email}>" if not name.isascii() else f'"{name}" <{email}>'


def _msgid(number: int, seed: int) -> str:
    return f"<m{number}.s{seed}@gen.example>"


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        words = rng.choices(VOCABULARY, cum_weights=CUMULATIVE, k=rng.randint(20, 90))
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words)), rng.choice(ACCENTED))
        out.append(" ".join(words).capitalize() + ".")
    return out


def _wrap(text: str, width: int = 76) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n".join(lines)


def _b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def message(meta: Meta, seed: int = 1) -> bytes:
    """The octets of one message (CRLF line endings)."""
    rng = random.Random(meta.number * 7919 + seed)
    subject = _encode_header(meta.subject) if rng.random() < 0.5 else meta.subject
    if not subject.isascii():
        subject = _encode_header(meta.subject)
    headers = [
        f"Received: from mx.gen.example by mail.gen.example; {format_datetime(datetime.fromtimestamp(meta.date, UTC))}",
        f"From: {_address(meta.sender)}",
        "To: " + ", ".join(_address(r) for r in meta.recipients),
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime.fromtimestamp(meta.date - rng.randint(1, 60), UTC))}",
        f"Message-ID: {_msgid(meta.number, seed)}",
    ]
    if meta.parent is not None:
        headers.append(f"In-Reply-To: {_msgid(meta.parent, seed)}")
        headers.append("References: " + "\r\n ".join(_msgid(a, seed) for a in meta.ancestors))
    headers.append("MIME-Version: 1.0")
    paragraphs = _paragraphs(rng, rng.randint(1, 6))
    text = "\r\n\r\n".join(_wrap(p) for p in paragraphs) + "\r\n\r\n-- \r\n" + _person(meta.sender)[0] + "\r\n"
    text_part = ("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text)
    body: str
    kind = rng.random()
    attach = rng.random() < 0.12
    if kind < 0.3:
        html = "<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>"
        alternative = (
            "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n" + text_part
            + "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + _wrap(html, 200) + "\r\n--alt--\r\n"
        )
        inner = alternative
    else:
        inner = text_part
    if attach:
        size = int(min(600_000, 1000 * (2 ** rng.uniform(0, 8))))
        name = rng.choice(["report", "invoice", "photo", "notes", "slides", "données"])
        ext, media = rng.choice([("pdf", "application/pdf"), ("png", "image/png"), ("txt", "text/plain"),
                                 ("csv", "text/csv"), ("zip", "application/zip")])
        data = rng.randbytes(size) if media not in ("text/plain", "text/csv") else \
            " ".join(rng.choice(WORDS) for _ in range(size // 6)).encode()
        filename = f"{name}-{meta.number}.{ext}"
        if filename.isascii():
            disposition = f'attachment; filename="{filename}"'
        else:  # RFC 2231
            disposition = "attachment; filename*=utf-8''" + "".join(
                c if c.isascii() and (c.isalnum() or c in ".-") else "".join(f"%{b:02X}" for b in c.encode())
                for c in filename)
        headers.append("Content-Type: multipart/mixed; boundary=\"mix\"")
        body = (
            "This is a multi-part message in MIME format.\r\n--mix\r\n" + inner + "\r\n--mix\r\n"
            f"Content-Type: {media}; name=\"{name}.{ext}\"\r\nContent-Disposition: {disposition}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(data) + "\r\n--mix--\r\n"
        )
    else:
        head, _, rest = inner.partition("\r\n\r\n")
        headers.extend(head.split("\r\n"))
        body = rest
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def messages(count: int, seed: int = 1) -> Iterator[tuple[Meta, bytes]]:
    for meta in plan(count, seed):
        yield meta, message(meta, seed)


def _escape(raw: bytes) -> bytes:
    """mboxrd: a line matching >*From gets one more >; LF line endings, as mbox files have."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    out = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
    return b"\n".join(out)


def write_mbox(path: Path, count: int, seed: int = 1) -> int:
    """Write an mboxrd file of `count` messages; returns its size."""
    with open(path, "wb") as out:
        for meta, raw in messages(count, seed):
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(meta.date))
            out.write(f"From {_person(meta.sender)[1]} {stamp}\n".encode())
            out.write(_escape(raw))
            out.write(b"\n\n")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    size = write_mbox(args.out, args.messages, args.seed)
    print(f"wrote {args.messages} messages, {size / 1e6:.1f} MB, in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
