"""Benchmark driver: send N personalised messages through newsletter.smtp.

Meant to run under the shared SMTP benchmark (smtp-sink + smtp-source as the limit):

    bench_smtp.sh -p 2601 'python bench/bench_transport.py --dir {dir} --port {port} \
        --n {n} --workers 4 --mode full'

``--dir`` is the message set bench_smtp_msg.py writes (newsletter.tmpl.eml,
recipients.csv). Modes:

- ``raw``   the prebuilt wire template filled by ``bytes.replace`` (like the reference
            senders), sent by ``SmtpConnection``: the transport alone.
- ``full``  everything but the database: the template's text and HTML become a
            ``MessageTemplate`` once (newsletter.mail.template), then per recipient an
            unsubscribe token, slot filling, headers and a VERP envelope sender.
            ``--dkim KEY.pem`` also signs every message.

``--workers`` threads each own one connection and take recipients from a shared
iterator. Prints ``sent=<k> secs=<t> msgs/s=<r>`` and a per-message build cost to stderr.
"""

from __future__ import annotations

import argparse
import csv
import email
import email.policy
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from newsletter.mail.dkim import DkimSigner
from newsletter.mail.settings import MessageSettings
from newsletter.mail.slots import SlotGrammar
from newsletter.mail.template import build_template
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.outcome import Status
from newsletter.smtp.settings import TLS_NONE, SmtpSettings
from newsletter.store.records import Recipient

Row = tuple[int, str, str, str]  # index, email, first name, token
Build = Callable[[Row], tuple[str, bytes]]  # -> (envelope sender, message bytes)


def load(folder: Path, count: int) -> tuple[bytes, list[Row]]:
    """The wire template and the first ``count`` recipients of the message set."""
    template = (folder / "newsletter.tmpl.eml").read_bytes()
    with (folder / "recipients.csv").open(newline="", encoding="utf-8") as handle:
        rows = [
            (i, r["email"], r["first_name"], r["token"])
            for i, r in enumerate(csv.DictReader(handle))
        ]
    if count > len(rows):
        sys.exit(f"only {len(rows)} recipients in {folder}")
    return template, rows[:count]


def raw_builder(template: bytes) -> Build:
    """Fill the reference template by bytes.replace (what the reference senders do)."""

    def build(row: Row) -> tuple[str, bytes]:
        _, address, name, token = row
        data = (
            template.replace(b"{{email}}", address.encode())
            .replace(b"{{first_name}}", name.encode())
            .replace(b"{{token}}", token.encode())
        )
        return "news@acme.test", data

    return build


def full_builder(template: bytes, dkim_key: Path | None) -> Build:
    """Turn the reference message into our MessageTemplate once; personalise per row."""
    source = email.message_from_bytes(template, policy=email.policy.default)
    text, html = (str(part.get_content()) for part in source.iter_parts())

    def to_slots(body: str) -> str:
        body = body.replace("https://acme.test/u/{{token}}", "%%unsubscribe_url%%")
        body = body.replace("{{first_name}}", "%%first_name%%").replace("{{email}}", "%%email%%")
        # as render writes them: tokens of the signing key's slot grammar
        return SlotGrammar.for_keys(("bench-key",)).mark(body.replace("{{token}}", "w42"))

    settings = MessageSettings(
        publication="Acme Weekly",
        from_name="Acme Weekly",
        from_address="news@acme.test",
        base_url="https://acme.test",
        secret_keys=("bench-key",),
        reply_to="editors@acme.test",
        unsubscribe_mailbox="unsubscribe@acme.test",
    )
    signer = None
    if dkim_key is not None:
        signer = DkimSigner(dkim_key.read_bytes(), domain="acme.test", selector="bench")
    message = build_template(
        settings,
        subject="Acme Weekly — Issue 42: cafés, köln & more",
        html_body=to_slots(html),
        text_body=to_slots(text),
        campaign="weekly-42",
        list_id=1,
        list_name="weekly",
        campaign_id=42,
        dkim_signer=signer,
    )

    def build(row: Row) -> tuple[str, bytes]:
        index, address, name, _ = row
        recipient = Recipient(index + 1, address, name)
        return message.envelope_sender(recipient), message.personalise(
            recipient, message_key=str(index)
        )

    return build


def send_all(rows: list[Row], build: Build, settings: SmtpSettings, workers: int) -> int:
    """Send every row with ``workers`` threads; return how many were accepted."""
    lock = threading.Lock()
    source: Iterator[Row] = iter(rows)
    accepted = [0] * workers
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            with SmtpConnection(settings) as connection:
                while True:
                    with lock:
                        row = next(source, None)
                    if row is None:
                        return
                    sender, data = build(row)
                    outcome = connection.send(sender, [row[1]], data)[0]
                    if outcome.status is Status.ACCEPTED:
                        accepted[slot] += 1
        except BaseException as exc:  # report after the run, never lose a thread silently
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(accepted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mode", choices=["raw", "full"], default="full")
    parser.add_argument("--dkim", type=Path, help="PEM key: DKIM-sign every message (full mode)")
    parser.add_argument("--per-connection", type=int, default=100)
    args = parser.parse_args()

    template, rows = load(args.dir, args.n)
    build = raw_builder(template) if args.mode == "raw" else full_builder(template, args.dkim)
    started = time.perf_counter()
    for row in rows[:200]:
        build(row)
    build_us = (time.perf_counter() - started) / min(200, len(rows)) * 1e6

    settings = SmtpSettings(
        host="127.0.0.1",
        port=args.port,
        security=TLS_NONE,
        timeout=30,
        messages_per_connection=args.per_connection,
    )
    started = time.perf_counter()
    sent = send_all(rows, build, settings, args.workers)
    seconds = time.perf_counter() - started
    print(
        f"sent={sent} secs={seconds:.3f} msgs/s={sent / seconds:.1f} "
        f"build_us_per_msg={build_us:.0f} mode={args.mode} workers={args.workers}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
