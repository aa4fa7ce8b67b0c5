"""Benchmark: compose an issue from 20 local articles, end to end; wall seconds.

    python bench/bench_compose.py [--runs 3]

Writes 20 invented articles (HTML pages, Markdown with front matter, plain-text
scrapes, in turn) to a temporary folder, then times ``compose_issue`` on a temporary
copy of the sample workspace: ingest, summarise, render once, write the folder.
Reading the sources alone is timed too, to show what the rest costs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from newsletter.compose.build import compose_issue
from newsletter.compose.ingest import expand_sources, read_source
from newsletter.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]

PLACES = ["Tromsø", "Lyon", "Kraków", "Porto", "Graz", "Ghent", "Tartu", "Bologna", "Cork", "Split"]
TOPICS = [
    ("bridge", "engineers", "a cable-stayed bridge across the river"),
    ("market", "traders", "a covered market hall"),
    ("school", "teachers", "a four-day school week"),
    ("tram", "commuters", "a new tram line to the suburbs"),
    ("forest", "rangers", "a rewilding plan for the hills"),
    ("archive", "historians", "a digitised city archive"),
    ("harbour", "fishers", "a cleaner harbour basin"),
    ("clinic", "nurses", "a night clinic for shift workers"),
    ("theatre", "actors", "a restored opera house"),
    ("orchard", "growers", "heritage apple varieties"),
]


def _paragraphs(place: str, topic: str, people: str, project: str, n: int) -> list[str]:
    return [
        f"{place.capitalize()} has opened {project} after {3 + n % 5} years of planning, "
        f"the city council said on {['Monday', 'Tuesday', 'Thursday'][n % 3]}. Local {people} "
        f"had asked for the {topic} since {1990 + n}, and the final design was chosen by a "
        "public vote last spring.",
        f"The work cost {12 + n} million euros, about a third of it from a regional fund. "
        f"Officials expect {n + 2},000 people a week to use the {topic} in its first year, "
        "a figure they call cautious.",
        f"Not everyone is pleased. A group of residents says the {topic} took money from "
        "smaller repairs across the old town, and wants an independent review of the budget "
        "before the next phase begins.",
        f'"We built it for the next fifty years, not the next election," said one of the '
        f"{people} who campaigned for it. The council will publish its first report in June.",
    ]


def _html(title: str, author: str, slug: str, paragraphs: list[str]) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title} | Example Courier</title>
<meta property="og:title" content="{title}">
<meta property="og:image" content="https://images.example.org/{slug}.jpg">
<meta name="author" content="{author}">
<link rel="canonical" href="https://courier.example.org/{slug}">
</head><body><nav><a href="/">Home</a> › <a href="/cities">Cities</a></nav>
<article><h1>{title}</h1><p class="byline">By {author}</p>
{body}
</article><footer>Subscribe to our newsletter · Share · 12 comments</footer></body></html>
"""


def _markdown(title: str, author: str, slug: str, paragraphs: list[str]) -> str:
    body = "\n\n".join(paragraphs)
    return f"""---
title: "{title}"
url: https://courier.example.org/{slug}
image: https://images.example.org/{slug}.jpg
author: {author}
date: 2026-11-{10 + len(slug) % 18}
---

{body}
"""


def _scrape(title: str, author: str, paragraphs: list[str]) -> str:
    body = "\n\n".join(paragraphs)
    furniture_before = "Home › Cities"
    furniture_after = "Subscribe to our newsletter\n\nCOMMENTS"
    return (
        f"{furniture_before}\n\n{title}\n\nPhoto: Example Courier\n\nBy {author}\n\n"
        f"{body}\n\n{furniture_after}\n"
    )


def write_articles(folder: Path, count: int = 20) -> list[Path]:
    """``count`` invented articles in ``folder``, kinds in turn: HTML, Markdown, text scrape."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        place = PLACES[n % len(PLACES)]
        topic, people, project = TOPICS[(n * 3 + n // len(PLACES)) % len(TOPICS)]
        title = f"{place} opens {project} after years of debate"
        author = ["Ana Ruiz", "Ola Berg", "Mia Novak", "Luca Bianchi"][n % 4]
        slug = f"{n:02d}-{topic}"
        paragraphs = _paragraphs(place, topic, people, project, n)
        kind = n % 3
        if kind == 0:
            path, text = folder / f"{slug}.html", _html(title, author, slug, paragraphs)
        elif kind == 1:
            path, text = folder / f"{slug}.md", _markdown(title, author, slug, paragraphs)
        else:
            path, text = folder / f"{slug}.txt", _scrape(title, author, paragraphs)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    """Run the benchmark and print wall seconds per compose."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="composes to time (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp) / "ws"
        root.mkdir()
        (root / "newsletter.toml").write_bytes((REPO / "newsletter.toml").read_bytes())
        articles = write_articles(Path(temp) / "articles")
        ws = load_workspace(root, environ={})
        sources = [str(path) for path in articles]

        started = time.perf_counter()
        for source in expand_sources(sources):
            read_source(source)
        first_read = time.perf_counter() - started  # includes imports and first-use setup

        walls, reads = [], []
        teasers = 0
        for _ in range(args.runs):
            started = time.perf_counter()
            for source in expand_sources(sources):
                read_source(source)
            reads.append(time.perf_counter() - started)

            started = time.perf_counter()
            result = compose_issue(
                ws, sources, subject=None, intro="", preheader="", out=None, skip_bad=False
            )
            walls.append(time.perf_counter() - started)
            teasers = len(result.issue.teasers)

    print(f"compose of {len(articles)} local articles -> {teasers} teasers, {args.runs} runs")
    print(f"  compose wall   median {statistics.median(walls):6.3f} s  (min {min(walls):.3f} s)")
    print(f"  reading alone  median {statistics.median(reads):6.3f} s")
    print(f"  first read, cold (imports, model setup) {first_read:6.3f} s")


if __name__ == "__main__":
    main()
