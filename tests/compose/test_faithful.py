"""compose/faithful.py: a machine-written teaser's numbers, dates and names must be in its
article; the verdicts on our own article/teaser pairs (tests/fixtures/llm/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from newsletter.compose.faithful import check_teaser
from newsletter.compose.ingest import read_source

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "faithfulness.json").read_text("utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[case["note"] for case in CASES])
def test_the_verdict_on_each_fixture_pair(case: dict[str, Any]) -> None:
    [article] = read_source(str(FIXTURES / case["article"]))
    verdict = check_teaser(case["teaser"], title=article.title, text=article.text)
    assert sorted(verdict.unsupported) == sorted(case["unsupported"])
    assert verdict.faithful is (not case["unsupported"])


def test_the_fixture_pairs_hold_both_verdicts() -> None:
    assert sum(not case["unsupported"] for case in CASES) >= 4
    assert sum(bool(case["unsupported"]) for case in CASES) >= 4


ARTICLE = (
    "U.S. Secretary of State Antony Blinken met ministers in Tokyo on 7 November 2023. "
    "The talks drew 1200 delegates and cut costs by 40 percent. Prices rose 3.5% in "
    "Japan's market; Hamas was not invited."
)


@pytest.mark.parametrize(
    ("teaser", "unsupported"),
    [
        # thousands separators, percent signs and possessives do not matter
        ("Antony Blinken's talks drew 1,200 delegates and cut costs by 40%.", []),
        ("Prices rose 3.5% in Japan.", []),
        ("Prices rose 3.6% in Japan.", ["3.6"]),
        # a date in another format is the same date; another day is not
        ("Blinken was in Tokyo on November 7, 2023.", []),
        ("Blinken was in Tokyo on 2023-11-07.", []),
        ("Blinken was in Tokyo on November 8.", ["November 8"]),
        ("Blinken was in Tokyo on 7 November 2024.", ["7 November 2024"]),
        # a name must match whole words: "Ham" is not in "Hamas"
        ("Blinken met Ham in Tokyo.", ["Ham"]),
        # a multi-word name must appear as a whole
        ("Blinken met Antony Smith.", ["Antony Smith"]),
        # "US" and "U.S." are the same; a sentence's first word is not a name
        ("The US Secretary of State went to Tokyo.", []),
        ("Delegates met. Ministers agreed.", []),
        ("Osaka hosted the talks.", []),  # a lone capital at a sentence start is unchecked
        ("Talks were held in Osaka.", ["Osaka"]),
        ("I think Blinken's talks went well.", []),
        ("Blinken met G7 ministers.", ["G7"]),
    ],
)
def test_numbers_dates_and_names(teaser: str, unsupported: list[str]) -> None:
    verdict = check_teaser(teaser, title="Blinken in Tokyo", text=ARTICLE)
    assert list(verdict.unsupported) == unsupported


def test_the_title_counts_as_the_article() -> None:
    assert check_teaser("Tokyo talks.", title="Talks in Tokyo", text="Ministers met.").faithful
    assert not check_teaser("Talks in Kyoto.", title="Talks in Tokyo", text="x").faithful
