"""The line rules behind ingest: boilerplate, bylines, dates, site names, sniffing."""

from __future__ import annotations

import datetime as dt

import pytest

from newsletter.compose.ingest.boilerplate import (
    LineKind,
    byline_of,
    classify,
    clean_paragraphs,
    is_breadcrumb,
    is_credit,
    is_dateline,
    is_furniture,
)
from newsletter.compose.ingest.fields import absolute_url, iso_date, join_names
from newsletter.compose.ingest.htmltext import html_to_paragraphs
from newsletter.compose.ingest.sniff import Kind, decode_html, kind_from_content_type, sniff_kind
from newsletter.compose.ingest.titles import choose_title, site_keys, strip_site_name


@pytest.mark.parametrize(
    "line",
    [
        "HomeInternationalIsrael-Hamas War",
        "NewsWorldEurope",
        "HomeWorld",
        "Home > World > Europe",
        "Home / Business",
        "Sport › Football › Premier League",
        "News | UK | Scotland",
    ],
)
def test_breadcrumbs(line: str) -> None:
    assert is_breadcrumb(line)
    assert classify(line) is LineKind.BREADCRUMB


@pytest.mark.parametrize(
    "line",
    [
        "OpenAI unveils new model for schools",
        "YouTube star opens cafe in Leeds",
        "McDonald's raises prices across Europe",
        "Talks stall | again",
        "The council met on Monday. It voted to close the road.",
    ],
)
def test_not_breadcrumbs(line: str) -> None:
    assert not is_breadcrumb(line)


@pytest.mark.parametrize(
    "line",
    [
        "Jonathan Erst/Pool Photo via AP",
        "(AP Photo/Evan Vucci)",
        "Photo: Getty Images",
        "Image credit: NASA/JPL",
        "Photograph by Mia Berg",
        "John Doe / Reuters",
        "Mia Berg/Harbourside Herald",
        "Getty Images",
        "SIMON DAWSON/AFP via Getty Images",
        "Photo: Per Holm/Reuters.",
        "Image source, Getty Images",
    ],
)
def test_credits(line: str) -> None:
    assert is_credit(line)
    assert classify(line) is LineKind.CREDIT


@pytest.mark.parametrize(
    "line",
    [
        "The minister told the Associated Press on Monday that talks would resume.",
        "The government offered a cash handout.",
        "Reuters reported on Monday that the company would cut 200 jobs in Europe.",
        "Prices rose 24/7 at the station kiosks, travellers complained on Friday.",
    ],
)
def test_not_credits(line: str) -> None:
    assert not is_credit(line)
    assert classify(line) is LineKind.PROSE


@pytest.mark.parametrize(
    "line",
    [
        "Subscribe to our newsletter",
        "Sign up for our morning briefing",
        "Sign up for our free newsletter to get the week's best stories.",
        "Advertisement",
        "ADVERTISEMENT",
        "Share this article",
        "Follow us on Twitter",
        "Read more: How drought is reshaping Europe's rivers",
        "4 min read",
        "Listen to this article",
        "© 2026 The Coast Courier",
        "The post Glacier survey appeared first on Fjordside Post.",
        "We use cookies to improve your experience. By continuing to browse you agree.",
        "Accept all cookies",
        "Tags: transport, council",
        "Advertisement - scroll to continue",
        "Story continues below advertisement",
        "Click to share on Facebook (Opens in new window)",
        "Related: How drought is reshaping Europe's rivers",
        "Follow Helena Marsh on Bluesky",
        "Copyright 2026 The Associated Press. All rights reserved. This material may not be "
        "published, broadcast, rewritten or redistributed.",
        "Our Standards: The Thomson Reuters Trust Principles.",
    ],
)
def test_furniture(line: str) -> None:
    assert is_furniture(line)
    assert classify(line) is LineKind.FURNITURE


@pytest.mark.parametrize(
    "line",
    [
        "Share prices rose 4 percent on Monday after the results were published.",
        "Subscribers to the service will pay more from January, the company said.",
        "Sign-up numbers for the scheme doubled in the first week, officials said.",
        "Read the full report and you will see why the council changed course, she said.",
        "Advertisement spending by supermarkets rose 5 percent last year, the survey found.",
        "Related companies in the group were not affected by the ruling, the court said.",
    ],
)
def test_news_that_starts_like_furniture(line: str) -> None:
    assert not is_furniture(line)
    assert classify(line) is LineKind.PROSE


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("By Helena Marsh", "Helena Marsh"),
        ("By Jane Roe and John Doe, Reuters", "Jane Roe and John Doe, Reuters"),
        ("Written by: Mia Berg", "Mia Berg"),
        ("By Monday, the council had voted.", ""),
        ("By the end of the year the plant will employ 1,400 people", ""),
    ],
)
def test_bylines(line: str, name: str) -> None:
    assert byline_of(line) == name


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Published: 14 March 2026 09:42 GMT", True),
        ("November 7, 2023", True),
        ("Updated Nov 7, 2023 10:32 AM EST", True),
        ("2026-03-14", True),
        ("Mon 14 March 2026", True),
        ("On 14 March 2026 the council voted to close the road.", False),
    ],
)
def test_datelines(line: str, expected: bool) -> None:
    assert is_dateline(line) is expected


def test_picture_captions_are_not_prose() -> None:
    caption = "Image caption, People queue outside a bank in Lagos on Monday as cash runs short."
    assert classify(caption) is LineKind.CREDIT


def test_short_unpunctuated_lines_are_not_prose() -> None:
    assert classify("What changes for commuters") is LineKind.SHORT
    assert classify("It rained.") is LineKind.PROSE


def test_clean_paragraphs_stops_at_the_comments_and_keeps_byline_and_date() -> None:
    cleaned = clean_paragraphs(
        [
            "Harbour strike ends",
            "By Mara Lind",
            "20 November 2026",
            "Dock workers returned to work on Thursday after a nine-day strike.",
            "Advertisement",
            "The deal raises wages by 4.5 percent.",
            "Comments (14)",
            "Sam: About time they settled it, the whole town was waiting.",
        ],
        title="Harbour strike ends",
    )
    assert cleaned.paragraphs == [
        "Dock workers returned to work on Thursday after a nine-day strike.",
        "The deal raises wages by 4.5 percent.",
    ]
    assert cleaned.byline == "Mara Lind"
    assert cleaned.dateline == "20 November 2026"


SITES = site_keys(["The Coast Courier"], "www.coastcourier.com")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Harbour strike ends | The Coast Courier", "Harbour strike ends"),
        ("The Coast Courier | Harbour strike ends", "Harbour strike ends"),
        ("Harbour strike ends - Coast Courier", "Harbour strike ends"),
        ("Harbour strike ends | Business | The Coast Courier", "Harbour strike ends"),
        ("Harbour strike ends - coastcourier.com", "Harbour strike ends"),
        ("Talks stall - again", "Talks stall - again"),
        ("Kenya: floods displace thousands", "Kenya: floods displace thousands"),
        ("Harbour strike ends · Local", "Harbour strike ends"),
    ],
)
def test_strip_site_name(title: str, expected: str) -> None:
    assert strip_site_name(title, SITES) == expected


def test_strip_site_name_by_headline_hint() -> None:
    title = "Lighthouse keepers return - North Sea Times"
    hints = ["Lighthouse keepers return"]
    assert strip_site_name(title, set(), headline_hints=hints) == "Lighthouse keepers return"


def test_choose_title_prefers_meta_then_h1_then_document_title() -> None:
    assert (
        choose_title(
            meta_title="Harbour strike ends | The Coast Courier",
            headings=["The Coast Courier", "Harbour strike ends"],
            document_title="Harbour strike ends | The Coast Courier",
            sites=SITES,
        )
        == "Harbour strike ends"
    )
    assert (
        choose_title(
            meta_title="",
            headings=[],
            document_title="Harbour strike ends | The Coast Courier",
            sites=SITES,
        )
        == "Harbour strike ends"
    )
    assert (
        choose_title(
            meta_title="", headings=["Harbour strike ends"], document_title="", sites=SITES
        )
        == "Harbour strike ends"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T10:00:00Z", "2026-11-28"),
        ("Published: 28 November 2026", "2026-11-28"),
        ("Nov 28, 2026 10:32 AM", "2026-11-28"),
        ("28.11.2026", "2026-11-28"),
        ("February 30, 2026", ""),
        ("next Tuesday", ""),
        (dt.date(2026, 1, 2), "2026-01-02"),
        (dt.datetime(2026, 1, 2, 8, 30), "2026-01-02"),
        (None, ""),
    ],
)
def test_iso_date(value: object, expected: str) -> None:
    assert iso_date(value) == expected


def test_absolute_url_and_names() -> None:
    assert (
        absolute_url("/img/a.jpg", "https://example.org/news/x") == "https://example.org/img/a.jpg"
    )
    assert absolute_url("//cdn.example.org/a.jpg") == "https://cdn.example.org/a.jpg"
    assert absolute_url("img/a.jpg") == ""  # nothing to resolve it against
    assert absolute_url("data:image/png;base64,AAAA", "https://example.org/") == ""
    assert join_names(["Ann Lee", {"name": "Bo Kim"}, ""]) == "Ann Lee, Bo Kim"


def test_html_fragment_to_paragraphs() -> None:
    fragment = (
        "<p>First <b>bold</b> para.</p>Loose text<br>after break<ul><li>One</li><li>Two</li></ul>"
        "<script>var x = 1;</script><p>Last &amp; final.</p>"
    )
    assert html_to_paragraphs(fragment) == [
        "First bold para.",
        "Loose text",
        "after break",
        "One",
        "Two",
        "Last & final.",
    ]


@pytest.mark.parametrize(
    ("data", "hint", "expected"),
    [
        (b'<?xml version="1.0"?><rss version="2.0"><channel>', Kind.TEXT, Kind.FEED),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'>", None, Kind.FEED),
        (b"\n\n<!DOCTYPE html><html><head>", Kind.TEXT, Kind.HTML),
        (b"<!-- saved page --><html lang='en'>", Kind.MARKDOWN, Kind.HTML),
        (b"---\ntitle: A\n---\nBody", Kind.TEXT, Kind.MARKDOWN),
        (b"# Heading\n\nBody text.", None, Kind.MARKDOWN),
        (b"<div><p>Loose fragment</p></div>", None, Kind.HTML),
        (b"<div><p>Loose fragment</p></div>", Kind.TEXT, Kind.HTML),
        (b"<div><p>Markdown may hold HTML</p></div>", Kind.MARKDOWN, Kind.MARKDOWN),
        (b"Plain headline\n\nPlain text.", None, Kind.TEXT),
        (b"Plain headline\n\nPlain text.", Kind.HTML, Kind.TEXT),
        (b"Plain headline\n\n<b>Bold</b> text.", Kind.HTML, Kind.HTML),
    ],
)
def test_sniff_kind(data: bytes, hint: Kind | None, expected: Kind) -> None:
    assert sniff_kind(data, hint) is expected


def test_content_types() -> None:
    assert kind_from_content_type("text/html; charset=utf-8") is Kind.HTML
    assert kind_from_content_type("application/rss+xml") is Kind.FEED
    assert kind_from_content_type("application/atom+xml") is Kind.FEED
    assert kind_from_content_type("text/xml") is Kind.FEED
    assert kind_from_content_type("text/plain") is Kind.TEXT
    assert kind_from_content_type("application/pdf") is None


def test_decode_html_charsets() -> None:
    page = '<meta charset="iso-8859-1"><p>Café “quoted”</p>'.encode("cp1252")
    assert "Café “quoted”" in decode_html(page, "p.html")
    assert decode_html("Grüße".encode("utf-16"), "p.html") == "Grüße"
    assert decode_html("Grüße".encode(), "p.html", declared="utf-8") == "Grüße"
