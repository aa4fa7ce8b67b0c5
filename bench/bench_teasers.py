"""Benchmark: how good are the titles and teasers an unattended issue would send?

    python bench/bench_teasers.py [--folder tests/fixtures/teasers] [--verbose]

Reads every page of the folder (our own article pages: news, blogs, docs; with and without
a standfirst; titles with site, section and author suffixes and with real " - "
subtitles) with ``read_source``, makes each teaser with the default word budget, and
compares with the folder's ``expected.json`` (each page's expected headline and the
publisher's own summary). Prints:

- title exact-match share (site and author suffixes must be gone, the headline whole);
- teaser ROUGE-1 F1 against the publisher's summary (unigrams, lower-cased,
  punctuation stripped), the mean over pages;
- boilerplate: how many teasers hold a sentence that ``boilerplate.is_boilerplate``
  calls page furniture (must be 0).

``measure(folder)`` is what the test of the figures calls.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pysbd

from newsletter.compose.ingest import read_source
from newsletter.compose.ingest.boilerplate import is_boilerplate
from newsletter.compose.summarize import make_teaser
from newsletter.config import Compose

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "teasers"


def unigrams(text: str) -> Counter[str]:
    """Lower-cased words of ``text`` with punctuation stripped, counted."""
    return Counter(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def rouge1(candidate: str, reference: str) -> float:
    """ROUGE-1 F1: the harmonic mean of unigram precision and recall (clipped counts)."""
    got, want = unigrams(candidate), unigrams(reference)
    overlap = sum((got & want).values())
    if not overlap:
        return 0.0
    precision = overlap / sum(got.values())
    recall = overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


@dataclass
class PageScore:
    """One page: the title and teaser made, what was expected, and the ROUGE-1 F1."""

    name: str
    title: str
    expected_title: str
    teaser: str
    reference: str
    rouge: float
    boilerplate: list[str] = field(default_factory=list)


@dataclass
class Figures:
    """The three figures over a folder of pages, and each page's score."""

    pages: list[PageScore]

    @property
    def title_share(self) -> float:
        """Share of pages whose title is exactly the expected headline."""
        return sum(p.title == p.expected_title for p in self.pages) / len(self.pages)

    @property
    def rouge1(self) -> float:
        """Mean teaser ROUGE-1 F1 against the publisher's summaries."""
        return sum(p.rouge for p in self.pages) / len(self.pages)

    @property
    def boilerplate(self) -> int:
        """Teasers holding at least one boilerplate sentence."""
        return sum(bool(p.boilerplate) for p in self.pages)


def measure(folder: Path = FIXTURES) -> Figures:
    """Read and summarise every page listed in ``folder``/expected.json -> the figures."""
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))["pages"]
    budget = Compose()
    segmenter = pysbd.Segmenter(language="en", clean=False)
    scores = []
    for name, want in expected.items():
        [article] = read_source(str(folder / name))
        teaser = make_teaser(
            article, min_words=budget.summary_min_words, max_words=budget.summary_max_words
        )
        sentences = [s.strip() for s in segmenter.segment(teaser.summary) if s.strip()]
        scores.append(
            PageScore(
                name=name,
                title=teaser.title,
                expected_title=want["title"],
                teaser=teaser.summary,
                reference=want["summary"],
                rouge=rouge1(teaser.summary, want["summary"]),
                boilerplate=[s for s in sentences if is_boilerplate(s)],
            )
        )
    return Figures(scores)


def main() -> None:
    """Measure the folder and print the figures (and, verbose, every page)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FIXTURES, help="pages + expected.json")
    parser.add_argument("--verbose", action="store_true", help="print every page's result")
    args = parser.parse_args()
    figures = measure(args.folder)
    if args.verbose:
        for page in figures.pages:
            mark = "ok " if page.title == page.expected_title else "BAD"
            print(f"{page.name}\n  title {mark} {page.title!r}")
            if page.title != page.expected_title:
                print(f"     expected {page.expected_title!r}")
            print(f"  rouge-1 {page.rouge:.2f} teaser: {page.teaser}")
            for sentence in page.boilerplate:
                print(f"  boilerplate: {sentence!r}")
    print(f"pages: {len(figures.pages)}")
    print(f"title exact-match share: {figures.title_share:.2f}")
    print(f"teaser ROUGE-1 F1 (mean): {figures.rouge1:.2f}")
    print(f"teasers with boilerplate: {figures.boilerplate}")


if __name__ == "__main__":
    main()
