"""MAIL FROM / RCPT TO paths: the fast parser (smtp/inbound.py) agrees with aiosmtpd's everywhere."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP

from tidings.smtp.inbound import LMTPServer, SMTPServer

PATHS = [
    "<sender@gen.example> BODY=8BITMIME SMTPUTF8 SIZE=123",
    "<a.b+c@x.y>",
    " <a@b>  SIZE=1",
    "<>",  # the null reverse-path: aiosmtpd's parser
    '<"q u"@x>',  # quoted local part
    "a@b",  # without angle brackets
    "<a@b>(comment) X=1",
    "<a..b@c>",
    "<a@[192.0.2.1]>",  # address literal
    "<@relay.example:a@b>",  # source route
    "<ü@example.com>",  # SMTPUTF8
    "<a@b>X",
    "<" + "a" * 70 + "@b>",
    "<a@b",
    "<a@@b>",
]


@pytest.mark.parametrize("server_class", [LMTPServer, SMTPServer])
@pytest.mark.parametrize("local_part_limit", [0, 64])
def test_fast_path_parses_as_aiosmtpd_does(server_class: type[SMTP], local_part_limit: int) -> None:
    async def compare() -> None:
        server = server_class(object())
        server.local_part_limit = local_part_limit
        for arg in PATHS:
            ours, theirs = server._getaddr(arg), SMTP._getaddr(server, arg)
            assert ours[0] == theirs[0], arg
            assert (ours[1] or "").split() == (theirs[1] or "").split(), arg

    asyncio.run(compare())
