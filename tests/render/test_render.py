"""render/: the theme, the pipeline Jinja -> MJML -> premailer, slots, and the guards that
keep the HTML fit for email (doctype, Outlook comments, @media !important, image widths,
UTF-8, slots byte for byte, alt text, size, footer) and the text part complete.

Regenerate the golden files after an intended theme change with
``NEWSLETTER_UPDATE_GOLDEN=1 pytest tests/render/test_render.py`` and review the diff.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest

import newsletter
from newsletter.errors import RenderError
from newsletter.mail.slots import SlotGrammar
from newsletter.models import Issue, Teaser
from newsletter.render.filters import wrap_text
from newsletter.render.mjml import compile_mjml, inline_css
from newsletter.render.pipeline import HTML_TEMPLATE, TEXT_TEMPLATE, render_issue, template_context
from newsletter.render.stamp import RENDER_SOURCES
from newsletter.render.theme import render_template, template_environment
from newsletter.workspace import Workspace, load_workspace

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE_GOLDEN = os.environ.get("NEWSLETTER_UPDATE_GOLDEN") == "1"
SLOTS_IN_THEME = {"greeting_name", "email", "unsubscribe_url"}
GOLDEN_KEY = "golden-key-not-secret"
SLOTS = SlotGrammar.for_keys((GOLDEN_KEY,))


def load_sample_issue() -> Issue:
    """The golden issue: five teasers with non-ASCII text, one without image or byline."""
    data = json.loads((GOLDEN / "sample_issue.json").read_text(encoding="utf-8"))
    return Issue(
        subject=data["subject"],
        date=data["date"],
        preheader=data["preheader"],
        intro=data["intro"],
        teasers=[Teaser.from_dict(item) for item in data["teasers"]],
    )


def many_teasers(count: int) -> Issue:
    """The sample issue grown to ``count`` teasers (distinct titles, URLs and images)."""
    issue = load_sample_issue()
    base = issue.teasers
    teasers = [
        replace(
            base[n % len(base)],
            title=f"{base[n % len(base)].title} ({n + 1})",
            url=f"https://news.example.org/story-{n + 1}",
            image=f"https://images.example.org/story-{n + 1}.jpg" if n % 4 != 3 else "",
        )
        for n in range(count)
    ]
    return replace(issue, teasers=teasers)


@pytest.fixture
def golden_ws(tmp_path: Path) -> Workspace:
    """A workspace with the fixed golden config and no template overrides."""
    root = tmp_path / "golden-ws"
    (root / "templates").mkdir(parents=True)
    shutil.copy(GOLDEN / "newsletter.toml", root / "newsletter.toml")
    return load_workspace(root, environ={"NEWSLETTER_SECRET_KEY": GOLDEN_KEY})


@pytest.fixture
def sample_issue() -> Issue:
    return load_sample_issue()


@pytest.fixture
def compiled_and_inlined(golden_ws: Workspace, sample_issue: Issue) -> tuple[str, str]:
    """The sample issue's HTML straight from mjml-python, and after premailer."""
    env = template_environment(golden_ws)
    source = render_template(
        golden_ws, env, HTML_TEMPLATE, template_context(golden_ws, sample_issue)
    )
    compiled = compile_mjml(source, HTML_TEMPLATE)
    return compiled, inline_css(compiled)


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.write_text(actual, encoding="utf-8", newline="\n")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} changed; if intended, rerun with NEWSLETTER_UPDATE_GOLDEN=1"


# --- golden ------------------------------------------------------------------------------


def test_render_matches_golden_html_and_text(golden_ws: Workspace, sample_issue: Issue) -> None:
    rendered = render_issue(golden_ws, sample_issue)
    _check_golden("issue.html", rendered.html)
    _check_golden("issue.txt", rendered.text)
    assert rendered.subject == sample_issue.subject
    assert rendered.preheader == sample_issue.preheader
    assert rendered.warnings == []


# --- guards on the HTML --------------------------------------------------------------------


def test_doctype_kept(compiled_and_inlined: tuple[str, str]) -> None:
    compiled, inlined = compiled_and_inlined
    assert compiled.startswith("<!doctype html>")
    assert inlined.startswith("<!doctype html>\n<html")
    assert inlined.lower().count("<!doctype") == 1


def test_outlook_conditional_comments_kept(compiled_and_inlined: tuple[str, str]) -> None:
    compiled, inlined = compiled_and_inlined
    for marker in ("<!--[if mso | IE]>", "<![endif]-->", "<!--[if mso]>", "<!--[if !mso]><!-->"):
        assert inlined.count(marker) == compiled.count(marker) > 0, marker


def test_media_rules_keep_important(compiled_and_inlined: tuple[str, str]) -> None:
    compiled, inlined = compiled_and_inlined
    media_blocks = re.findall(r"@media[^{]*\{(?:[^{}]*\{[^}]*\})+[^}]*\}", compiled)
    assert len(media_blocks) >= 3  # mjml's column widths, its mobile rule and ours
    for block in media_blocks:
        assert "!important" in block
        assert block in inlined
    assert ".lead-headline div { font-size: 25px !important;" in inlined


def test_img_width_attributes_as_mjml_wrote_them(compiled_and_inlined: tuple[str, str]) -> None:
    compiled, inlined = compiled_and_inlined

    def widths(html: str) -> list[tuple[str | None, str | None, str | None]]:
        tree = lxml.html.document_fromstring(html)
        return [(img.get("src"), img.get("width"), img.get("height")) for img in tree.iter("img")]

    before, after = widths(compiled), widths(inlined)
    assert after == before
    assert all(width and width.isdigit() for _, width, _ in after)
    # known pixels (issue.json's image_width / image_height) give the display size: the
    # 1200x675 lead at the layout's 600 px, the 1200x800 card in its 260 px column
    assert ("https://images.example.org/2026/11/night-train.jpg", "600", "338") in after
    assert ("https://images.example.org/2026/11/seed-cafe.jpg", "260", "173") in after
    assert ("https://images.example.org/2026/11/benches.jpg", "260", "auto") in after


def test_non_ascii_text_intact(golden_ws: Workspace, sample_issue: Issue) -> None:
    rendered = render_issue(golden_ws, sample_issue)
    for text in ("Köln", "café", "—", "🎻", "☕", "Zieliński", "Kraków", "Musterstraße"):
        assert text in rendered.html, text
        assert text in rendered.text, text
    assert 'charset="UTF-8"' in rendered.html or "charset=UTF-8" in rendered.html
    assert "&#" not in rendered.html  # no character turned into a numeric reference


def test_slots_survive_byte_for_byte(
    golden_ws: Workspace, sample_issue: Issue, compiled_and_inlined: tuple[str, str]
) -> None:
    compiled, inlined = compiled_and_inlined
    rendered = render_issue(golden_ws, sample_issue)
    assert SLOTS.names(compiled) == SLOTS.names(inlined) == SLOTS_IN_THEME
    assert SLOTS.names(rendered.text) == SLOTS_IN_THEME
    assert SLOTS.pattern.findall(inlined) == SLOTS.pattern.findall(compiled)
    assert f'href="{SLOTS.token("unsubscribe_url")}"' in inlined
    assert f"Hi {SLOTS.token('greeting_name')}," in inlined
    assert SLOTS.token("email") in inlined
    # nothing percent-encoded or escaped a token on the way
    assert "%25%25" not in inlined


def test_every_image_has_alt_text(golden_ws: Workspace, sample_issue: Issue) -> None:
    with_logo = golden_ws.config.model_copy(
        update={
            "publication": golden_ws.config.publication.model_copy(
                update={"logo_url": "https://images.example.org/logo.png"}
            )
        }
    )
    ws = replace(golden_ws, config=with_logo)
    tree = lxml.html.document_fromstring(render_issue(ws, sample_issue).html)
    images = list(tree.iter("img"))
    assert len(images) == 5  # logo + four teaser images (one teaser has none)
    assert all((img.get("alt") or "").strip() for img in images)
    alts = {img.get("src"): img.get("alt") for img in images}
    assert alts["https://images.example.org/logo.png"] == "The Weekly Brief"
    # the teaser without image_alt falls back to its headline
    assert alts["https://images.example.org/2026/11/seed-cafe.jpg"] == (
        "The café that pays its regulars in seeds"
    )


def test_ten_teaser_issue_is_under_90_kb(golden_ws: Workspace) -> None:
    rendered = render_issue(golden_ws, many_teasers(10))
    assert len(rendered.html.encode("utf-8")) < 90 * 1024
    assert rendered.warnings == []


def test_oversized_issue_warns_about_gmail_clipping(golden_ws: Workspace) -> None:
    rendered = render_issue(golden_ws, many_teasers(40))
    assert len(rendered.html.encode("utf-8")) > 90 * 1024
    assert len(rendered.warnings) == 1
    assert "Gmail clips at about 102 KB" in rendered.warnings[0]


def test_footer_has_postal_address_and_unsubscribe(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    tree = lxml.html.document_fromstring(render_issue(golden_ws, sample_issue).html)
    body_text = tree.text_content()
    assert "Example Media GmbH, Musterstraße 12, 10115 Berlin, Germany" in body_text
    unsubscribe = [a for a in tree.iter("a") if a.text_content().strip() == "Unsubscribe"]
    assert [a.get("href") for a in unsubscribe] == [SLOTS.token("unsubscribe_url")]
    # the footer comes after the last teaser, as a reader scrolls
    last_title = sample_issue.teasers[-1].title
    assert body_text.index(last_title) < body_text.index("Unsubscribe")
    assert "brief@example.org" in body_text


def test_layout_lead_story_then_two_column_cards(golden_ws: Workspace, sample_issue: Issue) -> None:
    html = render_issue(golden_ws, sample_issue).html
    tree = lxml.html.document_fromstring(html)
    # four more teasers -> two rows of two half-width columns
    assert len(tree.find_class("mj-column-per-50")) == 4
    assert f"Hi {SLOTS.token('greeting_name')}," in html
    assert 'lang="en"' in html
    assert "<title>The Weekly Brief — 28 November 2026</title>" in html
    # the first text in the body, hidden without a colour that matches the background
    preheader = tree.find_class("preheader")[0]
    assert preheader.xpath("string(//body)").strip().startswith(sample_issue.preheader)
    style = preheader.get("style").replace(" ", "")
    assert "display:none" in style and "color:#6b6760" in style
    assert preheader.text_content().strip() == sample_issue.preheader
    assert "#b3261e" in html  # the accent colour from the config
    assert "fonts.googleapis" not in html and "<link" not in html


def test_a_last_card_on_its_own_sits_beside_its_picture(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    first, second, third, no_image, violin = sample_issue.teasers
    with_image = replace(sample_issue, teasers=[first, second, third, violin])
    tree = lxml.html.document_fromstring(render_issue(golden_ws, with_image).html)
    assert len(tree.find_class("mj-column-per-50")) == 2
    assert len(tree.find_class("mj-column-per-40")) == 1  # the picture
    assert len(tree.find_class("mj-column-per-60")) == 1  # headline and summary
    without_image = replace(sample_issue, teasers=[first, second, third, no_image])
    tree = lxml.html.document_fromstring(render_issue(golden_ws, without_image).html)
    assert len(tree.find_class("mj-column-per-40")) == 0
    full_width = [column.text_content() for column in tree.find_class("mj-column-per-100")]
    assert any(no_image.title in text for text in full_width)


def test_text_part_carries_every_headline_summary_and_link(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    text = render_issue(golden_ws, sample_issue).text
    flat = " ".join(text.split())
    assert "The Weekly Brief" in text and sample_issue.subject in flat
    assert " ".join(sample_issue.intro.split()) in flat
    for teaser in sample_issue.teasers:
        assert teaser.title in flat
        assert " ".join(teaser.summary.split()) in flat
        assert f"\nRead more: {teaser.url}\n" in text  # the URL unbroken on its line
    assert f"\nUnsubscribe: {SLOTS.token('unsubscribe_url')}\n" in text
    assert "Example Media GmbH, Musterstraße 12, 10115 Berlin, Germany" in text
    for line in text.splitlines():
        assert len(line) <= 76 or "://" in line, line


def test_text_part_never_breaks_a_long_url() -> None:
    url = "https://news.example.org/" + "very-long-path-segment/" * 5 + "end"
    wrapped = wrap_text(f"Some words before the link {url} and after it, " * 2)
    assert url in wrapped.split("\n")[1] or any(url in line for line in wrapped.splitlines())
    assert all(len(line) <= 76 or url in line for line in wrapped.splitlines())


def test_cssutils_noise_is_silenced(
    golden_ws: Workspace, sample_issue: Issue, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        render_issue(golden_ws, sample_issue)
    assert not [r for r in caplog.records if r.name.startswith("CSSUTILS")]


# --- overrides and template errors ------------------------------------------------------------


def test_workspace_template_overrides_the_packaged_theme(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    (golden_ws.templates_dir / HTML_TEMPLATE).write_text(
        "<mjml><mj-body><mj-section><mj-column>"
        "<mj-text>Our own theme: {{ issue.subject }} "
        '<a href="{{ slot("unsubscribe_url") }}">leave</a></mj-text>'
        "</mj-column></mj-section></mj-body></mjml>\n",
        encoding="utf-8",
    )
    rendered = render_issue(golden_ws, sample_issue)
    assert "Our own theme: The Weekly Brief — 28 November 2026" in rendered.html
    assert "TOP STORY" not in rendered.html
    assert SLOTS.names(rendered.html) == {"unsubscribe_url"}
    assert "TOP STORY" in rendered.text  # issue.txt.j2 still comes from the package


def test_override_added_or_edited_later_is_picked_up(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    assert "TOP STORY" in render_issue(golden_ws, sample_issue).text
    override = golden_ws.templates_dir / TEXT_TEMPLATE
    override.write_text("first {{ issue.date }} {{ slot('unsubscribe_url') }}\n", encoding="utf-8")
    expected = f"first 2026-11-28 {SLOTS.token('unsubscribe_url')}\n"
    assert render_issue(golden_ws, sample_issue).text == expected
    override.write_text("second {{ issue.date }}\n", encoding="utf-8")
    assert render_issue(golden_ws, sample_issue).text == "second 2026-11-28\n"
    override.unlink()
    assert "TOP STORY" in render_issue(golden_ws, sample_issue).text


def test_template_error_names_file_and_line(golden_ws: Workspace, sample_issue: Issue) -> None:
    (golden_ws.templates_dir / TEXT_TEMPLATE).write_text(
        "{{ publication.name }}\n\n{{ issue.no_such_field }}\n", encoding="utf-8"
    )
    with pytest.raises(RenderError) as caught:
        render_issue(golden_ws, sample_issue)
    message = str(caught.value)
    assert message.startswith("templates/issue.txt.j2, line 3:")
    assert "no_such_field" in message


def test_template_syntax_error_names_file_and_line(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    (golden_ws.templates_dir / HTML_TEMPLATE).write_text(
        "<mjml>\n<mj-body>\n{% for x in teasers %}\n</mj-body>\n</mjml>\n", encoding="utf-8"
    )
    with pytest.raises(RenderError, match=r"^templates/issue.mjml.j2, line \d+: "):
        render_issue(golden_ws, sample_issue)


def test_unknown_slot_in_template_names_file_and_line(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    (golden_ws.templates_dir / TEXT_TEMPLATE).write_text(
        'Bye\n{{ slot("unsubscribe_link") }}\n', encoding="utf-8"
    )
    with pytest.raises(RenderError, match=r"templates/issue.txt.j2, line 2: unknown recipient"):
        render_issue(golden_ws, sample_issue)


def test_unknown_mjml_tags_are_warned_about_with_file_and_line(
    golden_ws: Workspace, sample_issue: Issue
) -> None:
    (golden_ws.templates_dir / "partials").mkdir()
    (golden_ws.templates_dir / "partials" / "footer.mjml.j2").write_text(
        '<mj-section>\n  <mj-colum>\n    <mj-text><a href="{{ slot("unsubscribe_url") }}">'
        "leave</a></mj-text>\n  </mj-colum>\n</mj-section>\n",
        encoding="utf-8",
    )
    (golden_ws.templates_dir / HTML_TEMPLATE).write_text(
        "<mjml>\n<mj-body>\n<mj-section><mj-column>\n"
        "<mj-txt>{{ issue.subject }}</mj-txt>\n<mj-text>kept</mj-text>\n"
        "</mj-column></mj-section>\n"
        '{% include "partials/footer.mjml.j2" %}\n</mj-body>\n</mjml>\n',
        encoding="utf-8",
    )
    warnings = render_issue(golden_ws, sample_issue).warnings
    assert [w.split(" is not")[0] for w in warnings] == [
        "templates/issue.mjml.j2, line 4: <mj-txt>",
        "templates/partials/footer.mjml.j2, line 2: <mj-colum>",
    ]
    assert render_issue(golden_ws, sample_issue).warnings == warnings  # once per render
    # the packaged theme uses only MJML's components
    for name in (HTML_TEMPLATE, "partials/footer.mjml.j2"):
        (golden_ws.templates_dir / name).unlink()
    assert render_issue(golden_ws, sample_issue).warnings == []


def test_template_that_is_not_mjml_fails_clearly(golden_ws: Workspace, sample_issue: Issue) -> None:
    (golden_ws.templates_dir / HTML_TEMPLATE).write_text("<mjml><mj-body>", encoding="utf-8")
    with pytest.raises(RenderError, match=r"issue.mjml.j2 produced MJML that cannot be compiled"):
        render_issue(golden_ws, sample_issue)


def test_html_values_are_escaped(golden_ws: Workspace, sample_issue: Issue) -> None:
    hostile = replace(
        sample_issue,
        teasers=[replace(sample_issue.teasers[0], title="<script>alert(1)</script> & more")],
    )
    rendered = render_issue(golden_ws, hostile)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in rendered.html
    assert "<script>alert(1)</script> & more" in rendered.text  # text is not HTML


# --- the responsive layout in a real browser ------------------------------------------------


@pytest.mark.browser
def test_cards_sit_side_by_side_at_600_and_stack_at_375(
    golden_ws: Workspace, sample_issue: Issue, tmp_path: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    page_file = tmp_path / "issue.html"
    page_file.write_text(render_issue(golden_ws, sample_issue).html, encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            boxes = {}
            for width in (600, 375):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(page_file.as_uri())
                cards = page.locator(".mj-column-per-50")
                boxes[width] = [cards.nth(i).bounding_box() for i in range(2)]
                page.close()
        finally:
            browser.close()
    wide, narrow = boxes[600], boxes[375]
    assert wide[0]["y"] == wide[1]["y"] and wide[0]["x"] < wide[1]["x"]  # two columns
    assert narrow[0]["x"] == narrow[1]["x"] and narrow[0]["y"] < narrow[1]["y"]  # stacked
    assert narrow[0]["width"] > wide[0]["width"]


def test_every_source_the_render_stamp_hashes_exists() -> None:
    """A stamp over a missing file is never written, so a moved module would silently
    make every send render again."""
    package = Path(newsletter.__file__).parent
    missing = [name for name in RENDER_SOURCES if not (package / name).exists()]
    assert missing == []
