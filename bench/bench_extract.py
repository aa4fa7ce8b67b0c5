"""Benchmark: HTML article extraction (read_source on a page file), pages per second.

    python bench/bench_extract.py [--runs 5] [--copies 1]

Generates 24 article pages of our own - four stories in six page layouts (a news site
with cookie banner, share bar, newsletter box, related links and comments; a WordPress
blog; a JSON-LD page whose headline is an h2; a bare blog; a legacy table layout in
windows-1252; an AMP-style page with the site name before the headline) - into a
temporary folder, reads each with ``read_source`` and prints the median pages/s over
the runs. It also prints how many titles came out exactly right and how many texts
kept a furniture phrase, as a sanity check on what was timed.
"""

from __future__ import annotations

import argparse
import html
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.ingest import read_source


@dataclass(frozen=True)
class Story:
    """One made-up news story."""

    slug: str
    headline: str
    author: str
    date: str
    paragraphs: tuple[str, ...]


STORIES = (
    Story(
        "harbour-strike",
        "Harbour strike ends after nine days as dockers accept pay deal",
        "Mara Lind",
        "2026-11-20",
        (
            "Dock workers at the port of Eastwick returned to work on Thursday after union "
            "leaders and the port authority agreed a three-year pay deal, ending a nine-day "
            "strike that had left more than forty ships waiting offshore.",
            "The agreement raises wages by 4.5 percent this year and by 3 percent in each of the "
            "next two years, union spokesperson Dr. Ines Varga said.",
            "Shipping lines had begun diverting cargo to neighbouring ports, and local hauliers "
            "said they had lost weeks of work.",
            "The strike was the longest at Eastwick since 1989. Talks broke down twice, first "
            "over pay and then over automated cranes on the new northern quay.",
            "Under the deal, the port authority will consult the union before any further "
            "automation and retrain workers whose jobs change.",
        ),
    ),
    Story(
        "timber-tariffs",
        "U.S. lifts tariffs on Nordic timber after two-year dispute",
        "Tomas Lunde",
        "2026-03-03",
        (
            "The United States will remove tariffs of up to 18 percent on softwood timber from "
            "Norway, Sweden and Finland, trade officials said on Tuesday, ending a dispute that "
            "had pushed up building costs on both sides of the Atlantic.",
            "The tariffs were imposed after U.S. producers complained that Nordic mills "
            "benefited from cheap state-owned forest leases.",
            "A trade panel ruled last year that the leases were priced at market rates, and "
            "Washington had until the end of March to comply.",
            "Timber prices in the Nordic countries rose on the news, and shares of Skog Group "
            "Inc. gained 6 percent in Oslo.",
        ),
    ),
    Story(
        "lighthouse-keepers",
        "Lighthouse keepers return to Skerry Rock after 40 years",
        "Eilidh Ross",
        "2026-06-02",
        (
            "Two keepers will live on Skerry Rock this summer for the first time since its "
            "lighthouse was automated in 1986, after a heritage trust won funding to restore "
            "the keepers' cottages.",
            "The trust said the keepers would guide small groups around the tower and record "
            "seabird numbers for a university survey.",
            "Applications drew more than 900 candidates from 14 countries. The two chosen, a "
            "retired ferry engineer and a marine biologist, start on 1 July.",
            "“It is the quietest office in the country,” said trust director Calum Reid.",
        ),
    ),
    Story(
        "danube-low-water",
        "Barge traffic on the Danube halts as water falls to record low",
        "Zsofia Kertesz",
        "2026-10-14",
        (
            "Cargo barges along a 300-kilometre stretch of the Danube were ordered to stop on "
            "Wednesday after the river fell below the lowest mark recorded since 1876.",
            "The halt leaves grain, fertiliser and steel shipments stranded between Vienna and "
            "the Iron Gates, shipping companies said.",
            "Hydrologists expect only a slight rise in the coming week, as rain forecast for "
            "the Alps will take several days to reach the middle Danube.",
            "Some loads are moving to rail, although freight trains in the region are already "
            "close to capacity.",
        ),
    ),
)

SITE = "The Coast Courier"
FURNITURE = ("Subscribe", "Share this", "Advertisement", "cookies", "Comments", "Related")


def _weight(seed: int) -> tuple[str, str, str]:
    """(head scripts, menu, footer) of the size real news pages carry: ~60 KB together."""
    script = (
        "<script>window.__STATE__ = "
        + json.dumps(
            {
                f"module{n}": {"id": n * seed, "flags": ["a", "b", "c"] * 4, "copy": "x" * 120}
                for n in range(150)
            }
        )
        + ";</script>"
    )
    menu = (
        "<nav class='mega'><ul>"
        + "".join(
            f"<li><a href='/section/{n}'>Section {n}</a><ul>"
            + "".join(f"<li><a href='/section/{n}/{m}'>Topic {n}.{m}</a></li>" for m in range(8))
            + "</ul></li>"
            for n in range(20)
        )
        + "</ul></nav>"
    )
    footer = (
        "<footer><ul>"
        + "".join(f"<li><a href='/about/{n}'>About link {n}</a></li>" for n in range(60))
        + "</ul><p>© 2026 Example Media. All rights reserved.</p></footer>"
    )
    return script, menu, footer


def _paras(story: Story, tag: str = "p") -> str:
    return "\n".join(f"<{tag}>{html.escape(p)}</{tag}>" for p in story.paragraphs)


def newsroom(story: Story) -> str:
    """A news site: og tags, cookie banner, nav, share bar, ads, newsletter box, comments."""
    head = html.escape(story.headline)
    script, menu, footer = _weight(1)
    body = list(story.paragraphs)
    middle = len(body) // 2
    paras = "\n".join(f"<p>{html.escape(p)}</p>" for p in body[:middle])
    rest = "\n".join(f"<p>{html.escape(p)}</p>" for p in body[middle:])
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{head} | {SITE}</title>
<meta property="og:title" content="{head}"><meta property="og:site_name" content="{SITE}">
<meta property="og:image" content="https://cdn.example.org/{story.slug}.jpg">
<meta property="og:url" content="https://news.example.org/{story.slug}">
<meta property="article:published_time" content="{story.date}T08:00:00Z">
<meta name="author" content="{story.author}">{script}</head><body>{menu}
<div class="cookie"><p>We use cookies to improve your experience.</p><button>Accept</button></div>
<header><a href="/">{SITE}</a><nav><a>News</a> <a>Business</a> <a>Sport</a></nav></header>
<main><article><h1>{head}</h1><p class="byline">By {story.author}</p>
<div class="share">Share this article <a>Facebook</a> <a>X</a></div>
<figure><img src="https://cdn.example.org/{story.slug}.jpg" alt="Scene of the story"></figure>
{paras}<aside><p>Advertisement</p></aside>{rest}
<div class="nl"><h3>Get our daily newsletter</h3><p>Subscribe to our newsletter</p></div>
</article><section><h2>Related stories</h2><ul><li><a>Another story</a></li></ul></section>
<section class="comments"><h2>Comments (3)</h2><p>Reader: I agree entirely.</p></section>
</main>{footer}</body></html>"""


def wordpress(story: Story) -> str:
    """A WordPress blog: no og tags, site-title h1 in the masthead, en-dash <title>."""
    script, menu, footer = _weight(2)
    head = html.escape(story.headline)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>{head} – Valley Herald</title>{script}</head><body>{menu}
<div id="masthead"><h1 class="site-title"><a href="/">Valley Herald</a></h1></div>
<div class="content"><h1 class="entry-title">{head}</h1>
<div class="entry-meta">Posted on {story.date} by {story.author}</div>
<div class="entry-content">{_paras(story)}</div>
<div class="sharedaddy"><h3>Share this:</h3><ul><li>Twitter</li><li>Facebook</li></ul></div>
<div id="comments"><h3>Leave a Reply</h3></div></div>
<div id="footer">Valley Herald · Powered by WordPress</div>{footer}</body></html>"""


def json_ld(story: Story) -> str:
    """JSON-LD NewsArticle, twitter tags, a relative image and the headline in an h2."""
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": story.headline,
        "datePublished": f"{story.date}T06:00:00Z",
        "author": {"@type": "Person", "name": story.author},
        "publisher": {"@type": "Organization", "name": "North Sea Times"},
    }
    script, menu, footer = _weight(3)
    head = html.escape(story.headline)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{head} - North Sea Times</title>
<meta name="twitter:image" content="/media/{story.slug}.jpg">
<link rel="canonical" href="https://northsea.example.org/{story.slug}">
<script type="application/ld+json">{json.dumps(data)}</script>{script}</head><body>{menu}
<div class="top"><span>Skip to content</span><span>Menu</span></div>
<div class="story"><h2 class="headline">{head}</h2>{_paras(story)}</div>
<div class="more"><h3>Most read</h3><ol><li>Ferry timetable changes</li></ol></div>
{footer}</body></html>"""


def bare_blog(story: Story) -> str:
    """A hand-made page: just <title>, an h1 and paragraphs in divs."""
    head = html.escape(story.headline)
    return f"""<html><head><title>{head}</title></head><body>
<h1>{head}</h1>{_paras(story, "div")}</body></html>"""


def legacy_tables(story: Story) -> str:
    """An old table layout in windows-1252 with <font> and a left-hand menu column."""
    head = html.escape(story.headline)
    declaration = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
    return f"""<html><head>{declaration}
<title>Harbour Gazette :: {head}</title></head><body><table width="100%"><tr>
<td width="150"><a>Home</a><br><a>Archive</a><br><a>Contact</a></td><td>
<font size="5"><b>{head}</b></font><br><i>by {story.author}</i>
{_paras(story)}</td></tr></table><center>Copyright 2026 Harbour Gazette</center></body></html>"""


def amp_page(story: Story) -> str:
    """An AMP-style page: site name before the headline, og:title with a suffix."""
    script, menu, footer = _weight(4)
    head = html.escape(story.headline)
    return f"""<!doctype html><html amp lang="en"><head><meta charset="utf-8">
<title>Fjordside Post: {head}</title>
<meta property="og:title" content="{head} - Fjordside Post">
<meta property="og:site_name" content="Fjordside Post">
<meta property="og:image" content="https://img.example.com/{story.slug}.jpg">{script}</head>
<body>{menu}
<header><amp-img src="/logo.png" alt="Fjordside Post"></amp-img></header>
<article><header><h1>{head}</h1><p>{story.author} · {story.date}</p></header>
{_paras(story)}<footer><p>Follow us on Twitter</p></footer></article>{footer}</body></html>"""


LAYOUTS: dict[str, Callable[[Story], str]] = {
    "newsroom": newsroom,
    "wordpress": wordpress,
    "jsonld": json_ld,
    "bare": bare_blog,
    "legacy": legacy_tables,
    "amp": amp_page,
}


def write_pages(folder: Path, copies: int) -> list[tuple[Path, Story]]:
    """Write every story in every layout (``copies`` times) into ``folder``."""
    pages = []
    for copy in range(copies):
        for layout, render in LAYOUTS.items():
            for story in STORIES:
                path = folder / f"{layout}-{story.slug}-{copy}.html"
                encoding = "cp1252" if layout == "legacy" else "utf-8"
                path.write_bytes(render(story).encode(encoding, errors="xmlcharrefreplace"))
                pages.append((path, story))
    return pages


def main() -> None:
    """Generate the pages, time read_source over them, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--copies", type=int, default=1, help="copies of the 24 pages")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pages = write_pages(Path(tmp), args.copies)
        sizes = [path.stat().st_size for path, _ in pages]
        results = [read_source(str(path))[0] for path, _ in pages]  # warm-up, and checked
        rates = []
        for _ in range(args.runs):
            start = time.perf_counter()
            for path, _ in pages:
                read_source(str(path))
            rates.append(len(pages) / (time.perf_counter() - start))

    titles_right = sum(a.title == s.headline for a, (_, s) in zip(results, pages, strict=True))
    leads_right = sum(
        a.text.startswith(s.paragraphs[0][:40]) for a, (_, s) in zip(results, pages, strict=True)
    )
    dirty = [a.source for a in results if any(word in a.text for word in FURNITURE)]
    wrong = [
        f"  {Path(a.source).name}: {a.title!r}"
        for a, (_, s) in zip(results, pages, strict=True)
        if a.title != s.headline
    ]
    print(
        f"pages: {len(pages)} ({len(LAYOUTS)} layouts x {len(STORIES)} stories), "
        f"{statistics.mean(sizes) / 1024:.0f} KB on average"
    )
    print(f"extraction: {statistics.median(rates):.1f} pages/s (median of {args.runs} runs)")
    print(f"titles exact: {titles_right}/{len(pages)}, lead paragraph first: {leads_right}")
    print(f"texts with furniture left: {len(dirty)}")
    for line in wrong:
        print(line)


if __name__ == "__main__":
    main()
