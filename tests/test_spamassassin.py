"""A sample campaign scores 0.0 or below under SpamAssassin's local rules.

A real issue is rendered by the real theme (render_issue), built into a DKIM-signed
message and personalised; SpamAssassin scores it with network tests off (-L). A control
message with Date and Message-ID removed goes through the same run, so the test shows
the report is read correctly: the control must trip the rules the campaign must not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.mail.dkim import DkimSigner
from newsletter.mail.settings import MessageSettings
from newsletter.mail.template import build_template
from newsletter.models import Issue, Teaser
from newsletter.render.pipeline import render_issue
from newsletter.store.records import Recipient
from newsletter.workspace import Workspace

DKIM_KEY = Path(__file__).resolve().parent / "fixtures" / "dkim" / "test-only-rsa2048.private.pem"
MAX_SCORE = 0.0
FORBIDDEN = (
    "MISSING_MID",
    "MISSING_DATE",
    "MISSING_HEADERS",
    "MPART_ALT_DIFF",
    "MIME_HTML_ONLY",
    "HTML_IMAGE_ONLY_",
    "HTML_SHORT_LINK_IMG_",
    "MIME_QP_LONG_LINE",
    "SUBJECT_NEEDS_ENCODING",
    "FROM_EXCESS_BASE64",
    "HTML_FONT_LOW_CONTRAST",
)

ISSUE = Issue(
    subject="Harbour brief: ferries, a café and new lamps",
    date="2026-11-28",
    preheader="The ferry timetable changes, pier three reopens, and the harbour walk gets "
    "new lamps.",
    intro="Good morning. Three short stories from the harbour this week, and one date for "
    "your diary.",
    teasers=[
        Teaser(
            title="Harbour ferries run every forty minutes from Monday",
            summary="The island ferry moves to a forty-minute timetable from Monday, and the "
            "last evening boat now waits for the late train from the city. Tickets bought "
            "before the change stay valid until the end of the year, the operator said.",
            url="https://www.example.org/news/ferry-timetable",
            image="https://www.example.org/img/ferry.jpg",
            image_alt="A white ferry leaving the pier",
            byline="Mara Lindqvist",
            source="example.org",
        ),
        Teaser(
            title="The café on pier three reopens after the storm repairs",
            summary="After six weeks of repairs to the roof and the terrace, the small café "
            "at the end of pier three opens again on Saturday morning. The owners kept the "
            "old menu, added a winter soup and extended the opening hours until the last "
            "ferry.",
            url="https://www.example.org/news/pier-cafe",
            image="https://www.example.org/img/cafe.jpg",
            image_alt="Tables on a wooden terrace by the water",
            byline="Jonas Weber",
            source="example.org",
        ),
        Teaser(
            title="Council approves new lamps for the harbour walk",
            summary="The council voted to replace the forty lamps along the harbour walk with "
            "warmer, dimmable lights that switch off after midnight. Residents had asked for "
            "less glare; the work starts in January and should take about three weeks.",
            url="https://www.example.org/news/harbour-lamps",
            source="example.org",
        ),
    ],
)


def campaign_message(workspace: Workspace) -> bytes:
    """The sample issue, rendered once and personalised for one subscriber."""
    rendered = render_issue(workspace, ISSUE)
    template = build_template(
        MessageSettings.from_workspace(workspace),
        subject=rendered.subject,
        html_body=rendered.html,
        text_body=rendered.text,
        campaign="2026-11-28-harbour-brief",
        list_id=1,
        list_name=workspace.config.send.list,
        dkim_signer=DkimSigner(DKIM_KEY.read_bytes(), domain="example.org", selector="news2026"),
    )
    return template.personalise(Recipient(7, "ines.nunez@example.net", "Inés Núñez"))


def score_all(messages: dict[str, bytes], home: Path) -> dict[str, tuple[float, set[str]]]:
    """Run SpamAssassin once over ``messages`` (an mbox) -> name -> (score, rules hit)."""
    mbox = b"".join(
        f"From {name}@probe.invalid Sat Nov 28 09:00:00 2026\n".encode()
        + data.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
        + b"\n"
        for name, data in messages.items()
    )
    result = subprocess.run(
        ["spamassassin", "-L", "-t", "--mbox"],
        input=mbox,
        capture_output=True,
        timeout=300,
        env={**os.environ, "HOME": str(home)},  # its user prefs file goes here
        check=True,
    )
    output = result.stdout.decode("utf-8", "replace")
    scores = {}
    for chunk in re.split(r"^From (?=\S+@probe\.invalid )", output, flags=re.M)[1:]:
        name = chunk.split("@", 1)[0]
        report = chunk.split("Content analysis details:", 1)[1]
        total = re.match(r"\s*\((-?[\d.]+) points", report)
        assert total is not None, report[:200]
        rules = set(re.findall(r"^\s*-?\d+(?:\.\d+)?\s+([A-Z][A-Z0-9_]+)\s", report, re.M))
        scores[name] = (float(total.group(1)), rules)
    assert set(scores) == set(messages), output[-2000:]
    return scores


@pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="the spamassassin binary is not installed (Debian: apt-get install spamassassin)",
)
def test_campaign_scores_zero_or_below_under_spamassassin(
    workspace: Workspace, tmp_path: Path
) -> None:
    message = campaign_message(workspace)
    control = re.sub(rb"^(?:Date|Message-ID): [^\r\n]*\r\n", b"", message, flags=re.M)
    assert control != message
    scores = score_all({"campaign": message, "control": control}, tmp_path)

    score, rules = scores["campaign"]
    fired = sorted(rule for rule in rules if rule.startswith(FORBIDDEN))
    assert fired == [], f"rules that must not fire: {fired}"
    assert score <= MAX_SCORE, f"SpamAssassin score {score} ({sorted(rules)})"

    # the control proves the report is read: the same run flags what is missing there
    control_score, control_rules = scores["control"]
    assert {"MISSING_DATE", "MISSING_MID"} <= control_rules
    assert control_score > score
