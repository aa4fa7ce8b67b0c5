"""Envelope and dot_stuff: what goes on the wire, and input they refuse."""

from __future__ import annotations

import pytest

from newsletter.smtp.envelope import Envelope, dot_stuff


def test_dot_stuffing() -> None:
    assert dot_stuff(b".x\r\n.\r\nend") == b"..x\r\n..\r\nend\r\n.\r\n"
    # data that promises no line to stuff and no bare LF is only terminated
    assert dot_stuff(b"a\r\nb", wire_ready=True) == b"a\r\nb\r\n.\r\n"


def test_a_bare_lf_is_refused() -> None:
    with pytest.raises(ValueError, match="CRLF"):
        dot_stuff(b"Subject: x\r\n\r\nbare\nline\r\n")


@pytest.mark.parametrize("address", ["", "a b@example.net", "<a@example.net>", "a@x\r\nRSET"])
def test_only_bare_addresses_go_in_commands(address: str) -> None:
    with pytest.raises(ValueError, match="bare address"):
        Envelope.of(address, ["x@example.net"], b"x\r\n")
    with pytest.raises(ValueError, match="bare address"):
        Envelope.of("x@example.net", [address], b"x\r\n")


def test_commands_follow_the_servers_extensions() -> None:
    envelope = Envelope.of("s@example.org", ["a@example.net", "b@example.net"], b"caf\xc3\xa9\r\n")
    assert envelope.commands(size=True, eightbit=True) == [
        b"MAIL FROM:<s@example.org> SIZE=7 BODY=8BITMIME\r\n",
        b"RCPT TO:<a@example.net>\r\n",
        b"RCPT TO:<b@example.net>\r\n",
        b"DATA\r\n",
    ]
    assert envelope.commands(size=False, eightbit=False)[0] == b"MAIL FROM:<s@example.org>\r\n"
    unicode = Envelope.of("s@example.org", ["zoë@example.net"], b"x\r\n")
    assert unicode.unicode
    assert unicode.commands(size=False, eightbit=True)[0] == (
        b"MAIL FROM:<s@example.org> SMTPUTF8 BODY=8BITMIME\r\n"
    )
