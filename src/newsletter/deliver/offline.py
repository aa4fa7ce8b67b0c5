"""Sends that leave the ledger alone: ``--test`` to a few addresses, ``--dry-run`` to files.

``send_test`` renders the issue now and mails it to the given addresses (subscribers
or not) through the configured server or the embedded one, marked as a test
("[TEST] " subject, ``X-Newsletter-Test: yes``). Nothing is recorded: no campaign, no
delivery row. Its unsubscribe links carry subscriber and list id 0, which name nobody:
following one shows the "invalid link" page and changes nothing. A test address that
is a subscriber gets their name and attributes filled in, so the test looks real.

``dry_run`` writes the messages a send to the list would hand to SMTP, byte for byte,
as ``OUTDIR/NNNNNNN-<subscriber id>.eml`` (one per sendable member, streamed: memory
stays flat for any list size), plus ``manifest.csv`` (file, subscriber id, envelope
sender, recipient). It connects to no server and writes no delivery row. What differs
from the real send: Date (the moment of sending), Message-ID (made from the delivery
row id, which does not exist yet; here ``dry-<subscriber id>``) and, before the
campaign's first run, the campaign number inside the unsubscribe tokens.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from newsletter.compose.folder import issue_key
from newsletter.errors import AddressError, NewsletterError
from newsletter.files import atomic_write
from newsletter.mail.tokens import TEST_COPY_ID
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.outcome import Status
from newsletter.smtp.settings import smtp_settings
from newsletter.store import normalize_address, open_store_for
from newsletter.store.campaigns import find_campaign
from newsletter.store.records import Recipient
from newsletter.workspace import Workspace

from .content import issue_label, make_template, render_for_send
from .plan import list_id_of, refuse_empty_list, resolve_list_name
from .reports import DryRunReport, SendReport
from .transport import open_transport, smtp_target

log = logging.getLogger(__name__)


def _addresses(addresses: Sequence[str]) -> list[str]:
    found: list[str] = []
    for given in addresses:
        for part in given.split(","):
            if not part.strip():
                continue
            try:
                address = normalize_address(part)
            except AddressError as exc:
                raise NewsletterError(
                    f"--test {part.strip()!r}: {exc}",
                    hint="give plain addresses like me@example.org",
                ) from None
            if address not in found:
                found.append(address)
    if not found:
        raise NewsletterError("no test address given", hint="pass --test me@example.org")
    return found


def send_test(
    ws: Workspace,
    issue_dir: Path,
    addresses: Sequence[str],
    *,
    list_name: str | None = None,
    smtp_url: str | None = None,
) -> SendReport:
    """Mail ``issue_dir`` as a test to ``addresses`` -> SendReport (``test=True``).

    Raises NewsletterError for a malformed address, DeliveryError when the server
    cannot be used, RenderError/ConfigError as a real send would.
    """
    started = time.monotonic()
    list_name = resolve_list_name(ws, list_name)
    wanted = _addresses(addresses)
    smtp = smtp_settings(ws, smtp_url)
    rendered, warnings = render_for_send(ws, issue_dir, smtp)
    template = make_template(
        ws,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        label=issue_label(issue_dir),
        list_id=TEST_COPY_ID,
        list_name=list_name,
        campaign_id=None,
        test=True,
    )
    recipients = []
    with open_store_for(ws) as store:
        for address in wanted:
            known = store.get_by_email(address)
            name, attributes = (known.name, known.attributes) if known else ("", {})
            recipients.append(Recipient(TEST_COPY_ID, address, name, attributes))
    report = SendReport(
        issue_dir=issue_dir,
        list_name=list_name,
        subject=template.subject,
        target=smtp_target(ws, smtp),
        test=True,
        warnings=warnings,
    )
    with open_transport(ws, smtp) as (settings, outbox), SmtpConnection(settings) as connection:
        report.outbox = outbox
        for recipient in recipients:
            data = template.personalise(recipient, message_key=f"test-{int(time.time())}")
            sender = template.envelope_sender(recipient)
            outcome = connection.send(sender, [recipient.email], data)[0]
            if outcome.status is Status.ACCEPTED:
                report.sent += 1
            elif outcome.status is Status.UNKNOWN:
                report.unknown += 1
            else:
                report.failed += 1
                report.failures.append((recipient.email, f"{outcome.code or ''} {outcome.reply}"))
        report.connections_opened = connection.connections_opened
    report.elapsed = time.monotonic() - started
    return report


def _prepare_outdir(outdir: Path) -> None:
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise NewsletterError(
            f"{outdir}: exists and is not an empty folder",
            hint="name a new or empty folder for --dry-run",
        )
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NewsletterError(f"{outdir}: cannot create ({exc.strerror})") from None


def _write_message(path: Path, data: bytes) -> None:
    """Store one dry-run message whole; not synced to disk, since files to inspect are
    not worth an fsync each."""
    atomic_write(path, data, sync=False)


def dry_run(
    ws: Workspace,
    issue_dir: Path,
    outdir: Path,
    list_name: str | None = None,
    *,
    write: Callable[[Path, bytes], None] | None = None,
) -> DryRunReport:
    """Write what a send of ``issue_dir`` to ``list_name`` would send -> DryRunReport.

    ``outdir`` must be new or empty. ``write(path, data)`` stores one message
    (default: a temporary file renamed into place; a benchmark passes its own).
    Raises NewsletterError for a used folder or a list with nobody to send to (as a
    send does), StoreError for an unknown list, RenderError/ConfigError as a send would.
    """
    write = write or _write_message
    started = time.monotonic()
    list_name = resolve_list_name(ws, list_name)
    rendered, warnings = render_for_send(ws, issue_dir)
    count = total_bytes = 0
    with open_store_for(ws) as store:
        list_id = list_id_of(store, list_name)
        refuse_empty_list(store, list_id, list_name)
        with store.read() as conn:
            campaign = find_campaign(conn, issue_key(ws, issue_dir), list_id)
        template = make_template(
            ws,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            label=issue_label(issue_dir),
            list_id=list_id,
            list_name=list_name,
            campaign_id=campaign.id if campaign else None,
        )
        _prepare_outdir(outdir)
        manifest_path = outdir / "manifest.csv"
        with manifest_path.open("w", newline="", encoding="utf-8") as handle:
            manifest = csv.writer(handle)
            manifest.writerow(["file", "subscriber_id", "mail_from", "rcpt_to"])
            for member in store.iter_recipients(list_name):
                count += 1
                recipient = Recipient(member.id, member.email, member.name, member.attributes)
                data = template.personalise(recipient, message_key=f"dry-{member.id}")
                name = f"{count:07d}-{member.id}.eml"
                write(outdir / name, data)
                manifest.writerow(
                    [name, member.id, template.envelope_sender(recipient), member.email]
                )
                total_bytes += len(data)
    log.info("dry run: %d messages, %d bytes in %s", count, total_bytes, outdir)
    return DryRunReport(outdir, count, total_bytes, time.monotonic() - started, warnings)
