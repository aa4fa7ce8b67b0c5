"""The embedded local SMTP server: what it stores, and that DKIM verifies on it."""

from __future__ import annotations

from pathlib import Path

import dkim

from newsletter.mail.dkim import DkimSigner
from newsletter.mail.settings import MessageSettings
from newsletter.mail.slots import SlotGrammar
from newsletter.mail.template import build_template
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.embedded import EmbeddedServer, outbox_dir
from newsletter.smtp.outcome import Status
from newsletter.smtp.settings import parse_smtp_url
from newsletter.store.records import Recipient
from newsletter.workspace import Workspace
from smtp_servers import MESSAGE, SENDER

DKIM_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "dkim"


def test_embedded_server_stores_each_message_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    with EmbeddedServer(folder) as server:
        assert server.url == f"smtp://127.0.0.1:{server.port}" and server.port > 0
        settings = parse_smtp_url(server.url, timeout=5)
        with SmtpConnection(settings) as connection:
            for number in range(3):
                outcome = connection.send(SENDER, [f"r{number}@example.net"], MESSAGE)[0]
                assert outcome.status is Status.ACCEPTED
            assert connection.pipelining  # advertised by the embedded server
        stored = server.messages
    assert [m.recipients for m in stored] == [(f"r{n}@example.net",) for n in range(3)]
    assert all(m.mail_from == SENDER for m in stored)
    assert all(m.path.read_bytes() == MESSAGE for m in stored)
    assert sorted(p.name for p in folder.iterdir()) == sorted(m.path.name for m in stored)
    assert all(p.suffix == ".eml" for p in folder.iterdir())  # no temporary files left


def test_outbox_is_in_the_workspace(workspace: Workspace) -> None:
    assert outbox_dir(workspace) == workspace.root / "outbox"


def test_dkim_verifies_on_the_bytes_the_server_received(tmp_path: Path) -> None:
    pem = (DKIM_DIR / "test-only-rsa2048.private.pem").read_bytes()
    record = (DKIM_DIR / "test-only-rsa2048.dns.txt").read_bytes().strip()
    settings = MessageSettings(
        publication="The Harbour Letter",
        from_name="The Harbour Letter",
        from_address="letter@harbour.example.org",
        base_url="https://harbour.example.org",
        secret_keys=("k",),
    )
    template = build_template(
        settings,
        subject="Ferries — and cafés",
        # as render writes them: slots are tokens of the signing key's grammar
        html_body=SlotGrammar.for_keys(("k",)).mark(
            "<p>Hi %%name%%</p>\n<p>.dot line</p>\n<a href='%%unsubscribe_url%%'>Leave</a>"
        ),
        text_body=SlotGrammar.for_keys(("k",)).mark(
            ".dot line\nHi %%name%%\n%%unsubscribe_url%%\n"
        ),
        campaign="w48",
        list_id=1,
        list_name="main",
        dkim_signer=DkimSigner(pem, domain="harbour.example.org", selector="s1"),
    )
    recipient = Recipient(5, "nuno@example.net", "Nuño Álvarez")
    data = template.personalise(recipient)
    with EmbeddedServer(tmp_path / "outbox") as server:
        with SmtpConnection(server.settings()) as connection:
            sender = template.envelope_sender(recipient)
            assert connection.send(sender, [recipient.email], data)[0].status is Status.ACCEPTED
        received = server.messages[0]
    assert received.path.read_bytes() == data
    assert received.mail_from == sender
    assert dkim.verify(received.path.read_bytes(), dnsfunc=lambda name, timeout=5: record)
