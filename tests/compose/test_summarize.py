"""Teasers: lead sentences to a word budget, cleaned, with abbreviations kept whole."""

from __future__ import annotations

from pathlib import Path

import pysbd
import pytest

from newsletter.compose.ingest import read_source
from newsletter.compose.ingest.boilerplate import is_boilerplate
from newsletter.compose.summarize import _sentences, make_teaser, summarize, trim_to_words
from newsletter.models import Article

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "seeds" / "000_acb975feda389482.txt"
ARTICLES = Path(__file__).resolve().parents[1] / "fixtures" / "articles"


def words(text: str) -> int:
    return len(text.split())


def test_seed_teaser_is_its_first_two_sentences() -> None:
    [article] = read_source(str(SEED))
    teaser = make_teaser(article)
    assert teaser.summary == (
        "After completing a comprehensive diplomatic tour of the Middle East, U.S. Secretary "
        "of State Antony Blinken redirected his diplomatic efforts concerning the Israel-Hamas "
        "conflict towards Asia on Tuesday. He appealed to the Group of Seven (G7) major "
        "industrial democracies to reach a consensus on addressing the crisis."
    )
    assert teaser.title == article.title


def test_abbreviations_do_not_end_sentences() -> None:
    text = (
        "Shares of Brightwave Inc. rose 9 percent on Friday after the U.S. Department of Energy "
        "approved its plant near Dayton. Dr. Aisha Okoro, the chief executive, said building "
        "would start at once. Analysts at Fenwick & Co. raised their price target. "
        "A fourth sentence that must not be reached at all because the budget is full."
    )
    teaser = summarize(text, min_words=25, max_words=40)
    assert teaser == (
        "Shares of Brightwave Inc. rose 9 percent on Friday after the U.S. Department of Energy "
        "approved its plant near Dayton. Dr. Aisha Okoro, the chief executive, said building "
        "would start at once."
    )


def test_quotes_stay_with_their_sentence() -> None:
    text = (
        "“Nobody wanted this to go on,” union spokesperson Ines Varga told reporters on "
        "Wednesday. “We will be back at the gates tomorrow.” The port said the backlog would "
        "take ten days to clear, and some ships would still be diverted."
    )
    teaser = summarize(text, min_words=12, max_words=40)
    assert teaser == (
        "“Nobody wanted this to go on,” union spokesperson Ines Varga told reporters on Wednesday."
    )
    two = summarize(text, min_words=20, max_words=40)
    assert two.endswith("“We will be back at the gates tomorrow.”")


def test_short_article_is_the_whole_text() -> None:
    text = "The ferry resumed service on Monday.\n\nIt had been suspended for a week by storms."
    assert summarize(text) == (
        "The ferry resumed service on Monday. It had been suspended for a week by storms."
    )


def test_sentences_are_added_until_min_words_but_never_past_max() -> None:
    sentence = "The council met again on Tuesday to debate the budget."  # 10 words
    text = " ".join([sentence] * 10)
    assert words(summarize(text, min_words=25, max_words=35)) == 30
    # Stopping short of the minimum beats going over the maximum.
    assert words(summarize(text, min_words=25, max_words=28)) == 20


def test_long_first_sentence_is_cut_near_max_words_with_ellipsis() -> None:
    first = (
        "The committee, which met behind closed doors for most of Tuesday afternoon in the old "
        "town hall, agreed after a long and sometimes heated debate to postpone any decision on "
        "the harbour bridge until the engineers report on the soil under the eastern pier, a "
        "report not due before the spring of next year at the earliest, officials said."
    )
    teaser = summarize(first + " Second sentence here.", min_words=20, max_words=30)
    assert teaser.endswith("…")
    assert words(teaser) <= 30
    assert words(teaser) >= 23  # near the budget, not a stub
    assert first.startswith(teaser.rstrip("…"))
    assert "Second" not in teaser


def test_trim_does_not_end_on_a_dangling_word() -> None:
    sentence = " ".join(["word"] * 8 + ["and", "the"] + ["more"] * 10)
    assert trim_to_words(sentence, 10) == " ".join(["word"] * 8) + "…"


def test_boilerplate_never_reaches_the_teaser() -> None:
    text = (
        "Harbour strike ends after nine days\n"
        "Jane Roe/Pool Photo via AP\n"
        "Subscribe to our newsletter\n"
        "Advertisement\n"
        "Dock workers returned to work on Thursday after a nine-day strike. "
        "Subscribe to our newsletter for more. Photo: Per Holm/Reuters. "
        "The deal raises wages by 4.5 percent this year and 3 percent after that.\n"
        "Share this article\n"
    )
    teaser = summarize(
        text, min_words=20, max_words=40, title="Harbour strike ends after nine days"
    )
    assert teaser == (
        "Dock workers returned to work on Thursday after a nine-day strike. "
        "The deal raises wages by 4.5 percent this year and 3 percent after that."
    )


def test_title_glued_to_the_first_paragraph_is_dropped() -> None:
    title = "Ferry fares frozen for 2027"
    text = f"{title} The island ferry company will keep its fares at this year's level."
    assert summarize(text, title=title) == (
        "The island ferry company will keep its fares at this year's level."
    )


def test_given_summary_always_wins_whitespace_normalised() -> None:
    article = Article(
        title="Rail pass",
        text="A long text. " * 50,
        source="x.md",
        summary="  One pass\n for trains,   buses and ferries. ",
        image="https://example.org/a.jpg",
    )
    teaser = make_teaser(article)
    assert teaser.summary == "One pass for trains, buses and ferries."
    assert teaser.image_alt == "Rail pass"  # an image always has alt text


def test_budget_must_make_sense() -> None:
    with pytest.raises(ValueError):
        summarize("Some text here.", min_words=50, max_words=40)


@pytest.mark.parametrize(
    "name",
    [
        "scrape_markets.txt",
        "scrape_europe.txt",
        "scrape_wrapped.txt",
        "page_full.html",
        "page_title_suffix.html",
        "page_jsonld.html",
        "article_heading.md",
        "feed_rss.xml",
    ],
)
def test_fixture_teasers_fit_the_budget_and_hold_no_boilerplate(name: str) -> None:
    for article in read_source(str(ARTICLES / name)):
        teaser = make_teaser(article)
        assert teaser.summary
        if not article.summary:
            assert words(teaser.summary) <= 60
            assert teaser.summary.split()[0] in article.text.split()[:3]
        assert not any(is_boilerplate(line) for line in teaser.summary.split("\n"))
        for phrase in ("Subscribe", "Advertisement", "Share this", "Photo:", "via AP", "COMMENTS"):
            assert phrase not in teaser.summary


def test_teaser_of_markets_scrape_keeps_abbreviations_whole() -> None:
    [article] = read_source(str(ARTICLES / "scrape_markets.txt"))
    teaser = make_teaser(article, min_words=40, max_words=60)
    # The first sentence (44 words) holds "Inc." and "U.S."; the next would pass 60.
    assert teaser.summary.startswith("Shares of Brightwave Inc. rose 9 percent")
    assert teaser.summary.endswith("ending a review that had dragged on for more than a year.")


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ("LONDON (Reuters) - Britain said on Monday it would cut rates.", "Britain said"),
        ("KYIV, Ukraine (AP) — Ukraine said on Monday it would cut rates.", "Ukraine said"),
        ("WASHINGTON — The Senate voted on the bill on Monday.", "The Senate"),
        ("U.S. officials said on Monday - after a delay - that rates fell.", "U.S. officials"),
    ],
)
def test_wire_dateline_is_left_out_of_the_teaser(lead: str, expected: str) -> None:
    assert summarize(lead, min_words=3, max_words=30).startswith(expected)


def test_windowed_sentence_split_matches_whole_paragraph_split() -> None:
    paragraph = read_source(str(SEED))[0].text.replace("\n\n", " ")
    whole = [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(paragraph)]
    for window in (7, 17, 60):
        assert [s.strip() for s in _sentences(paragraph, window=window)] == whole
