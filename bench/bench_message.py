"""Benchmark: cost of one personalised message, without and with DKIM.

    python bench/bench_message.py [-n 300]

Builds a ~40 KB campaign template once (a 10-teaser issue rendered by the real theme),
then times ``MessageTemplate.personalise`` per recipient: without DKIM, with our
DkimSigner (dkimpy canonicalisation, OpenSSL RSA), and, for comparison, plain
``dkim.sign`` (dkimpy's pure-Python RSA) on the same bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import dkim

from newsletter.mail.dkim import DkimSigner
from newsletter.mail.settings import MessageSettings
from newsletter.mail.template import build_template
from newsletter.models import Issue, Teaser
from newsletter.render.pipeline import render_issue
from newsletter.store.records import Recipient
from newsletter.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
KEY = REPO / "tests" / "fixtures" / "dkim" / "test-only-rsa2048.private.pem"
SUMMARY = (
    "The island ferry moves to a forty-minute timetable from Monday, and the last evening "
    "boat now waits for the late train. Tickets bought before the change stay valid."
)


def issue() -> Issue:
    """A ten-teaser issue of invented harbour news."""
    teasers = [
        Teaser(
            title=f"Harbour story number {n}: ferries, cafés and lamps",
            summary=SUMMARY,
            url=f"https://www.example.org/news/{n}",
            image=f"https://www.example.org/img/{n}.jpg",
            image_alt=f"Picture {n}",
        )
        for n in range(10)
    ]
    return Issue(subject="Harbour brief — week 48", date="2026-11-28", teasers=teasers)


def per_message_us(action: object, count: int) -> float:
    """Median microseconds of ``action(i)`` over ``count`` calls."""
    times = []
    for number in range(count):
        started = time.perf_counter()
        action(number)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300)
    count = parser.parse_args().n
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-key")
    workspace = load_workspace(REPO)
    rendered = render_issue(workspace, issue())
    settings = MessageSettings.from_workspace(workspace)
    signer = DkimSigner(KEY.read_bytes(), domain="example.org", selector="bench")
    plain, signed = (
        build_template(
            settings,
            subject=rendered.subject,
            html_body=rendered.html,
            text_body=rendered.text,
            campaign="2026-11-28-harbour-brief",
            list_id=1,
            list_name="main",
            dkim_signer=dkim_signer,
        )
        for dkim_signer in (None, signer)
    )

    def recipient(n: int) -> Recipient:
        return Recipient(n, f"reader{n}@example.net", "Inés Núñez")

    sample = plain.personalise(recipient(0))
    pem = KEY.read_bytes()
    headers = [b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe"]
    print(f"message size: {len(sample)} bytes")
    no_dkim = per_message_us(lambda n: plain.personalise(recipient(n)), count)
    with_dkim = per_message_us(lambda n: signed.personalise(recipient(n)), count)
    print(f"personalise, no DKIM: {no_dkim:.0f} us")
    print(f"personalise + DkimSigner: {with_dkim:.0f} us")
    dkimpy = per_message_us(
        lambda n: dkim.sign(sample, b"bench", b"example.org", pem, include_headers=headers),
        max(count // 10, 10),
    )
    print(f"dkim.sign alone (pure-Python RSA): {dkimpy:.0f} us")


if __name__ == "__main__":
    main()
