"""Readers: plain-text scrapes, HTML pages, Markdown, feeds, folders, and bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from newsletter.compose.ingest import expand_sources, read_source
from newsletter.errors import SourceError
from newsletter.models import Article

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "seeds" / "000_acb975feda389482.txt"
ARTICLES = Path(__file__).resolve().parents[1] / "fixtures" / "articles"

FURNITURE = (
    "Subscribe",
    "Sign up",
    "COMMENTS",
    "Comments",
    "Advertisement",
    "Share this",
    "Share on",
    "Follow us",
    "Read more",
    "Photo:",
    "via AP",
    "AP Photo",
    "cookies",
    "Related stories",
    "All rights reserved",
    "appeared first on",
)


def read_one(name: str) -> Article:
    [article] = read_source(str(ARTICLES / name))
    return article


def assert_clean(article: Article) -> None:
    for phrase in FURNITURE:
        assert phrase not in article.title
        assert phrase not in article.text, phrase


def source_error(source: str | Path) -> str:
    with pytest.raises(SourceError) as caught:
        read_source(str(source))
    message = str(caught.value)
    assert "\n" not in message
    assert str(source) in message
    assert caught.value.hint  # every error says what to do next
    return message


# --- plain-text scrapes --------------------------------------------------------------------


def test_seed_scrape_title_and_text() -> None:
    article = read_source(str(SEED))[0]
    assert article.title == (
        "Blinken seeks G7 unity on Israel-Hamas war among items on crisis-heavy global agenda"
    )
    assert article.text.startswith("After completing a comprehensive diplomatic tour")
    assert article.text.endswith(
        "His upcoming itinerary includes travels to South Korea and India."
    )
    assert "HomeInternational" not in article.text
    assert "Jonathan Erst" not in article.text
    assert article.text.count("\n\n") == 8  # nine paragraphs
    assert article.source == str(SEED)
    assert_clean(article)


def test_a_scrape_line_holding_only_an_address_is_the_link(tmp_path: Path) -> None:
    assert read_source(str(SEED))[0].url == (
        "https://www.example.org/world/blinken-g7-unity-israel-hamas-war"
    )
    scrape = tmp_path / "ferry.txt"
    body = "The island ferry will run four times a day from December, the operator said."
    scrape.write_text(
        f"Ferry timetable changes for winter\n\n{body}\n\n<https://harbour.example.org/f>\n",
        encoding="utf-8",
    )
    [article] = read_source(str(scrape))
    assert (article.url, article.text) == ("https://harbour.example.org/f", body)


def test_scrape_with_separator_breadcrumb_byline_date_and_related_block() -> None:
    article = read_one("scrape_markets.txt")
    assert article.title == "Brightwave Inc. shares jump after U.S. regulator clears battery plant"
    assert article.byline == "Helena Marsh"
    assert article.published == "2026-03-14"
    assert article.text.startswith("Shares of Brightwave Inc. rose 9 percent")
    assert article.text.endswith("compared with lithium-ion designs.")
    for leftover in ("Home >", "Listen to this", "min read", "Battery makers race", "Ohio bets"):
        assert leftover not in article.text
    assert_clean(article)


def test_scrape_with_camelcase_breadcrumb_section_label_credit_and_comments() -> None:
    article = read_one("scrape_europe.txt")
    assert article.title == "Barge traffic on the Danube halts as water falls to record low"
    assert article.text.startswith("Cargo barges along a 300-kilometre stretch")
    assert article.text.endswith("who has run a tug service from Mohacs for 22 years.")
    assert "Anna_K" not in article.text  # the comments after "3 Comments"
    assert "Milos Varga" not in article.text
    assert_clean(article)


def test_hard_wrapped_scrape_is_joined_into_paragraphs() -> None:
    article = read_one("scrape_wrapped.txt")
    assert article.title == "Town council approves car-free Saturdays in the old quarter"
    paragraphs = article.text.split("\n\n")
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("Harbourside council voted 19 to 6")
    assert paragraphs[0].endswith("opponents say will drive them away.")
    assert "Leon Berg" not in article.text
    assert "Tags:" not in article.text


def test_scrape_without_headline_takes_its_first_sentence() -> None:
    article = read_one("scrape_no_headline.txt")
    assert article.title.startswith("Volunteers counted 412 nesting pairs")
    assert len(article.title.split()) <= 15
    assert article.text.startswith("Volunteers counted 412 nesting pairs")


# --- HTML pages ----------------------------------------------------------------------------


def test_html_page_with_furniture_all_around_the_article() -> None:
    article = read_one("page_full.html")
    assert article.title == "Harbour strike ends after nine days as dockers accept pay deal"
    assert article.url == "https://www.coastcourier.example.com/news/2026/11/harbour-strike-ends"
    assert article.image == "https://cdn.coastcourier.example.com/img/harbour-cranes.jpg"
    assert article.image_alt == "Idle cranes at the Eastwick container terminal during the strike"
    assert article.byline == "Mara Lind"
    assert article.published == "2026-11-20"
    assert article.text.startswith("Dock workers at the port of Eastwick returned to work")
    assert article.text.endswith("Ms. Varga said members had voted 71 percent in favour.")
    assert "Sam: About time" not in article.text
    assert "Port automation: who wins?" not in article.text
    # og:description is not taken as a given summary (see webpage.py for why).
    assert article.summary == ""
    assert_clean(article)


def test_html_title_with_site_suffix_and_logo_h1() -> None:
    article = read_one("page_title_suffix.html")
    assert article.title == "U.S. lifts tariffs on Nordic timber after two-year dispute"
    assert article.text.startswith("The United States will remove tariffs")
    assert "Powered by WordPress" not in article.text
    assert article.image == ""
    assert article.image_alt == ""
    assert_clean(article)


def test_html_json_ld_headline_relative_image_and_caption_alt() -> None:
    article = read_one("page_jsonld.html")
    assert article.title == "Lighthouse keepers return to Skerry Rock after 40 years"
    assert article.url == "https://northseatimes.example.org/uk/lighthouse-keepers-return"
    assert article.image == "https://northseatimes.example.org/media/skerry-rock.jpg"
    # No alt attribute: the caption, without its credit, describes the picture.
    assert article.image_alt == "The lighthouse on Skerry Rock was automated in 1986."
    assert article.byline == "Eilidh Ross, Jon Hart"
    assert article.published == "2026-06-02"
    assert "Ferry timetable changes" not in article.text
    assert_clean(article)


@pytest.mark.parametrize("name", ["page_no_article.html", "page_malformed.html"])
def test_html_without_article_text(name: str) -> None:
    message = source_error(ARTICLES / name)
    assert message.startswith(f"no article text found in {ARTICLES / name}")


def test_txt_file_holding_html_is_read_as_html(tmp_path: Path) -> None:
    disguised = tmp_path / "saved-page.txt"
    shutil.copy(ARTICLES / "page_full.html", disguised)
    [article] = read_source(str(disguised))
    assert article.title == "Harbour strike ends after nine days as dockers accept pay deal"
    assert "<p>" not in article.text


def test_html_declared_charset_is_honoured(tmp_path: Path) -> None:
    page = tmp_path / "legacy.html"
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
        "<title>Zürich café owners protest rent rises</title></head><body><article>"
        "<h1>Zürich café owners protest rent rises</h1>"
        "<p>Café owners in Zürich’s old town marched to the city hall on Saturday, saying rent "
        "rises of up to 30 percent would force many of them to close before the summer season. "
        "The city says it cannot cap commercial rents.</p></article></body></html>"
    )
    page.write_bytes(body.encode("cp1252"))
    [article] = read_source(str(page))
    assert article.title == "Zürich café owners protest rent rises"
    assert "Zürich’s old town" in article.text


def test_html_without_charset_and_not_utf8_falls_back_to_windows_1252(tmp_path: Path) -> None:
    page = tmp_path / "undeclared.html"
    body = (
        "<html><head><title>Schöne Grüße aus Köln</title></head><body><article>"
        "<h1>Schöne Grüße aus Köln</h1><p>Die Kölner Straßenbahn fährt ab Montag wieder "
        "nach Fahrplan, teilten die Verkehrsbetriebe am Freitag mit. Die Reparatur der "
        "Oberleitung hatte länger gedauert als erwartet, hieß es.</p></article></body></html>"
    )
    page.write_bytes(body.encode("cp1252"))
    [article] = read_source(str(page))
    assert article.title == "Schöne Grüße aus Köln"
    assert "Straßenbahn fährt" in article.text


# --- Markdown ------------------------------------------------------------------------------


def test_markdown_front_matter_gives_fields_and_summary() -> None:
    article = read_one("article_front_matter.md")
    assert article.title == "Regional rail pass to cover buses and ferries from January"
    assert article.url == "https://transit.example.org/news/regional-pass"
    assert article.image == "https://transit.example.org/img/ferry-terminal.jpg"
    assert article.image_alt == "Passengers boarding the morning ferry at Nordhavn"
    assert article.byline == "Priya Natarajan, Ole Brandt"
    assert article.published == "2026-12-01"
    assert article.summary == (
        "From January one monthly pass will cover trains, buses and the three island ferries, "
        "at the price of today's rail-only ticket."
    )
    assert article.text.startswith("The regional transport authority will fold bus and ferry")
    assert "monthly rail pass from 1 January" in article.text
    assert "one ticket across the whole network" in article.text
    for syntax in ("**", "](", "# ", "- Buses", "*night", "---"):
        assert syntax not in article.text
    assert article.title not in article.text  # the heading repeating the title is dropped


def test_markdown_heading_is_title_and_body_image_is_the_image() -> None:
    article = read_one("article_heading.md")
    assert article.title == "Community orchard plants 200 heritage apple trees"
    assert article.image == "https://orchard.example.net/photos/planting.jpg"
    assert article.image_alt == "Volunteers planting saplings on a frosty morning"
    assert article.summary == ""
    assert "Ashmead's Kernel and Blenheim Orange" in article.text
    assert '"Some of these trees' in article.text
    for syntax in ("`", "*", "![", "> ", "#"):
        assert syntax not in article.text


def test_markdown_broken_yaml_names_file_and_line() -> None:
    message = source_error(ARTICLES / "article_bad_yaml.md")
    assert f"{ARTICLES / 'article_bad_yaml.md'}, line 3: front matter is not valid YAML" in message


@pytest.mark.parametrize(
    ("front_matter", "expected"),
    [
        ("title: Open\nsummary: never closed\n", "line 1: front matter is never closed"),
        ("---\n- a\n- list\n---\n", "line 2: front matter must be 'key: value' lines"),
        ("---\ntitle: T\ndate: next Tuesday\n---\n", "line 3: front matter 'date' is not a date"),
        (
            "---\ntitle: T\nimage: ftp://example.org/a.jpg\n---\n",
            "line 3: front matter 'image' must be an absolute",
        ),
        ("---\ntitle: [a, b]\n---\n", "line 2: front matter 'title' must be text"),
    ],
)
def test_markdown_front_matter_problems(tmp_path: Path, front_matter: str, expected: str) -> None:
    path = tmp_path / "story.md"
    opening = "" if front_matter.startswith("---") else "---\n"
    path.write_text(opening + front_matter + "\nThe council met on Monday to vote.\n")
    message = source_error(path)
    assert f"{path}, {expected}" in message


def test_markdown_without_body_text(tmp_path: Path) -> None:
    path = tmp_path / "empty-body.md"
    path.write_text("---\ntitle: Only a title\n---\n\n# Only a title\n")
    assert source_error(path).startswith(f"no article text found in {path}")


# --- feeds ---------------------------------------------------------------------------------


def test_rss_feed_gives_one_article_per_entry() -> None:
    glacier, stars, seeds = read_source(str(ARTICLES / "feed_rss.xml"))
    assert glacier.title == "Glacier survey finds faster melt on northern flank"
    assert glacier.url == "https://fjordside.example.com/science/glacier-survey"
    assert glacier.image == "https://fjordside.example.com/img/breheim.jpg"
    assert glacier.image_alt == glacier.title
    assert glacier.byline == "Ingrid Solberg"
    assert glacier.published == "2026-11-23"
    assert glacier.text.startswith("A three-year survey of the Breheim glacier found")
    # A finished-prose description beside full content is the publisher's teaser.
    assert glacier.summary.startswith("A three-year survey of the Breheim glacier shows")
    assert_clean(glacier)

    # A description cut off with "[…]" is no teaser.
    assert stars.summary == ""
    assert stars.byline == "Lars Eide"
    assert stars.image == "https://fjordside.example.com/img/club-telescope.jpg"
    assert stars.image_alt == "A club member adjusts a telescope at dusk"

    # Escaped HTML in <description> is cleaned to text; an image enclosure is the image.
    assert seeds.text.startswith("The northern seed bank has added 1,200 samples")
    assert "<p>" not in seeds.text
    assert seeds.image == "https://fjordside.example.com/img/saxifrage.jpg"
    assert seeds.summary == ""  # no separate content: the description is the text
    assert {a.source for a in (glacier, stars, seeds)} == {str(ARTICLES / "feed_rss.xml")}


def test_atom_feed_entities_relative_links_and_summaries() -> None:
    dairy, hedgerows = read_source(str(ARTICLES / "feed_atom.atom"))
    assert dairy.title == "Dairy co-op’s new plant cuts milk miles by a third"
    assert dairy.url == "https://farming.example.org/2026/11/dairy-plant"
    assert dairy.byline == "Femke de Wit"
    assert dairy.published == "2026-11-26"
    assert dairy.summary.startswith("A new processing plant in the middle of the polder")
    assert dairy.text.startswith("The Lowland Dairy co-operative opened")
    assert hedgerows.summary == ""
    assert hedgerows.text.startswith("Farmers can again apply for grants")
    assert hedgerows.image == ""


def test_feed_without_entries() -> None:
    message = source_error(ARTICLES / "feed_empty.xml")
    assert message.startswith(f"feed {ARTICLES / 'feed_empty.xml'} has no entries")


def test_html_extension_holding_a_feed_is_read_as_a_feed(tmp_path: Path) -> None:
    disguised = tmp_path / "science.html"
    shutil.copy(ARTICLES / "feed_rss.xml", disguised)
    assert len(read_source(str(disguised))) == 3


def test_xml_file_that_is_no_feed(tmp_path: Path) -> None:
    path = tmp_path / "config.xml"
    path.write_text('<?xml version="1.0"?><settings><volume>3</volume></settings>')
    assert "is not a readable RSS or Atom feed" in source_error(path)


# --- folders -------------------------------------------------------------------------------


def make_folder(root: Path) -> Path:
    folder = root / "seeds"
    folder.mkdir()
    shutil.copy(ARTICLES / "scrape_wrapped.txt", folder / "b_council.txt")
    shutil.copy(ARTICLES / "article_heading.md", folder / "a_orchard.md")
    shutil.copy(ARTICLES / "feed_atom.atom", folder / "c_farming.atom")
    (folder / "README.md").write_text("# How to add seeds\n\nPut articles here.\n")
    (folder / ".draft.txt").write_text("A hidden draft that is not ready for publication yet.\n")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / "sub").mkdir()
    return folder


def test_folder_reads_its_article_files_sorted(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    titles = [article.title for article in read_source(str(folder))]
    assert titles == [
        "Community orchard plants 200 heritage apple trees",
        "Town council approves car-free Saturdays in the old quarter",
        "Dairy co-op’s new plant cuts milk miles by a third",
        "Hedgerow grants reopen",
    ]


def test_expand_sources_lists_folder_files_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    sources = [str(folder), "https://example.org/feed.xml", str(tmp_path / "gone.txt"), str(empty)]
    assert expand_sources(sources) == [
        str(folder / "a_orchard.md"),
        str(folder / "b_council.txt"),
        str(folder / "c_farming.atom"),
        "https://example.org/feed.xml",
        str(tmp_path / "gone.txt"),
        str(empty),
    ]


def test_folder_with_nothing_readable(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG")
    (folder / "README.txt").write_text("Pictures for the issue.")
    assert source_error(folder).startswith(f"folder {folder} has no article files")


# --- bad input -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert (
        source_error(tmp_path / "nope.txt")
        == f"{tmp_path / 'nope.txt'} does not exist (check the path)"
    )


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.txt"
    shutil.copy(ARTICLES / "scrape_wrapped.txt", path)
    path.chmod(0)
    if os.geteuid() == 0:
        # root reads any file: make reading fail the way it does for a normal user.
        def denied(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", denied)
    assert source_error(path).startswith(f"cannot read {path}: permission denied")


@pytest.mark.parametrize("content", [b"", b"  \n\n\t \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blank.txt"
    path.write_bytes(content)
    assert source_error(path).startswith(f"{path} is empty")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "scan.txt"
    path.write_bytes(b"%PDF-1.7\n\x00\x01\x02binary\x00stream")
    assert source_error(path).startswith(f"{path} is a binary file")


def test_non_utf8_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Café owners protest\n\nThe café owners of Zürich marched.".encode("latin-1"))
    message = source_error(path)
    assert message.startswith(f"{path} is not UTF-8 text")
    assert message.endswith("(save it as UTF-8)")


def test_utf16_text_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes("Title line here\n\nSome text.".encode("utf-16"))
    assert "save it as UTF-8" in source_error(path)


def test_text_with_only_furniture(tmp_path: Path) -> None:
    path = tmp_path / "junk.txt"
    path.write_text("HomeNewsWorld\n\nSubscribe to our newsletter\n\nCOMMENTS\n")
    assert source_error(path).startswith(f"no article text found in {path}")


# --- the sample workspace ------------------------------------------------------------------


def test_sample_seeds_read_as_a_newsroom_issue() -> None:
    seeds = REPO / "seeds"
    files = expand_sources([str(seeds)])
    assert Path(files[0]).name == "000_acb975feda389482.txt"
    assert {Path(f).suffix for f in files} >= {".txt", ".html", ".md", ".xml"}
    articles = read_source(str(seeds), root=REPO)
    assert len(articles) == 6
    assert len({a.title for a in articles}) == 6
    for article in articles:
        assert_clean(article)
        assert article.text
        assert article.image_alt or not article.image
    # every picture but the plain-text scrape's is one of the sample's own, which compose hosts
    pictures = sorted(a.image for a in articles if a.image)
    assert pictures == sorted(f"images/{path.name}" for path in (seeds / "images").glob("*.jpg"))
    assert not articles[0].image and Path(articles[0].source).suffix == ".txt"


def test_scrape_with_story_label_caption_and_wire_footer() -> None:
    article = read_one("scrape_section_label.txt")
    assert article.title == (
        "Ferry crews and operators resume talks in Rostock as strike enters second week"
    )
    assert article.byline == "Jonas Weber and Lena Fischer"
    assert article.text.startswith("Negotiators for ferry crews and three Baltic operators")
    assert article.text.endswith("adding up to a day to deliveries.")
    for leftover in ("Baltic Ferry Dispute", "Lorries queue", "Story continues", "Copyright"):
        assert leftover not in article.text
    assert len(article.text.split("\n\n")) == 3
    assert_clean(article)


def test_a_url_of_another_kind_is_named_as_such() -> None:
    with pytest.raises(SourceError) as info:
        read_source("ftp://files.example.org/story.txt")
    assert "ftp: addresses cannot be read" in info.value.message
    assert "http(s) URL" in str(info.value.hint)
