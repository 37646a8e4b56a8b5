"""The DATA reader (smtp/data.py): the same message and outcomes as line-by-line reading."""

from __future__ import annotations

import asyncio
import re

import pytest

from tidings.smtp.data import DataState, has_long_line, read_data


def _read(wire: bytes, *, size_limit: int | None = None, line_limit: int = 1001, piece: int = 7,
          stream_limit: int = 1001) -> tuple[bytes, DataState, bytes]:
    """Feed `wire` in small pieces; return the message, its state and what is left in the stream."""

    async def scenario() -> tuple[bytes, DataState, bytes]:
        reader = asyncio.StreamReader(limit=stream_limit)

        async def feed() -> None:
            for start in range(0, len(wire), piece):
                reader.feed_data(wire[start : start + piece])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeding = asyncio.create_task(feed())
        content, state = await read_data(reader, size_limit, line_limit)
        await feeding
        return content, state, await reader.read()

    return asyncio.run(scenario())


def test_lines_ending_with_a_dot_are_content_and_the_lone_dot_ends_the_data() -> None:
    wire = b"Subject: x\r\n\r\nRegards.\r\nSee you.\r\n.\r\nQUIT\r\n"
    content, state, rest = _read(wire)
    assert state is DataState.NOMINAL
    assert content == b"Subject: x\r\n\r\nRegards.\r\nSee you.\r\n"
    assert rest == b"QUIT\r\n"  # a pipelined command stays in the stream


def test_dot_stuffed_lines_lose_their_first_dot() -> None:
    # RFC 5321 §4.5.2: the client doubles a leading dot; the server removes one.
    content, _, _ = _read(b"..hidden\r\nmiddle\r\n...\r\n..\r\n.\r\n")
    assert content == b".hidden\r\nmiddle\r\n..\r\n.\r\n"


def test_empty_message() -> None:
    content, state, rest = _read(b".\r\nNOOP\r\n")
    assert (content, state, rest) == (b"", DataState.NOMINAL, b"NOOP\r\n")


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 64, 4096])
def test_any_split_of_the_stream_gives_the_same_message(piece: int) -> None:
    body = b"".join(b"line %d ends with a dot.\r\n" % i for i in range(300)) + b"..x\r\n"
    content, state, _ = _read(body + b".\r\n", piece=piece, stream_limit=64)
    assert state is DataState.NOMINAL
    assert content == body.replace(b"\r\n..", b"\r\n.")


def test_too_much_data_is_read_to_the_end_and_refused() -> None:
    content, state, rest = _read(b"x" * 500 + b"\r\n" + b"y" * 500 + b"\r\n.\r\nRSET\r\n", size_limit=600)
    assert (content, state, rest) == (b"", DataState.TOO_MUCH, b"RSET\r\n")


def test_overlong_line_is_refused() -> None:
    ok = b"a" * 998 + b"\r\n"  # 1000 octets with CRLF: within RFC 5321's 1000 (aiosmtpd allows 1001)
    content, state, _ = _read(ok + b".\r\n")
    assert state is DataState.NOMINAL and content == ok
    content, state, rest = _read(b"a" * 1000 + b"\r\n.\r\nQUIT\r\n")
    assert (content, state, rest) == (b"", DataState.TOO_LONG, b"QUIT\r\n")


@pytest.mark.parametrize("limit", [5, 1001])
def test_line_length_check_agrees_with_its_definition(limit: int) -> None:
    # The definition: line_limit octets (CR included) before a LF, or at the end of the data.
    definition = re.compile(rb"[^\n]{%d}" % limit)
    for length in range(limit - 3, limit + 3):
        for data in (b"a" * length, b"x\r\n" + b"a" * length + b"\nz", b"a" * length + b"\r\n", b"\n" * length):
            assert has_long_line(data, limit) is (definition.search(data) is not None), (length, data[:20])
