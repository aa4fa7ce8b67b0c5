"""CLI wiring of compose, render and extract (behaviour is tested on the core in test_issue)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.errors import SourceError

ARTICLES = Path(__file__).resolve().parents[1] / "golden" / "articles"


def _run(workspace_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-w", str(workspace_dir), *args])


def _composed_folder(output: str) -> Path:
    match = re.search(r"^composed \d+ teasers? into (.+)$", output, re.MULTILINE)
    assert match, output
    return Path(match.group(1))


def test_compose_passes_options_and_prints_the_folder(workspace_dir: Path) -> None:
    result = _run(
        workspace_dir,
        "compose",
        str(workspace_dir / "seeds"),
        str(ARTICLES / "library.md"),
        "--subject",
        "Weekly brief",
        "--intro",
        "Hello from the desk.",
        "--preheader",
        "Two stories",
    )
    assert result.exit_code == 0, result.output
    folder = _composed_folder(result.stdout)
    assert folder.parent == workspace_dir / "issues"
    assert folder.name.endswith("-weekly-brief")
    assert f"newsletter preview {folder}" in result.stdout
    data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    assert (data["subject"], data["intro"], data["preheader"]) == (
        "Weekly brief",
        "Hello from the desk.",
        "Two stories",
    )
    # every seed file gives at least one teaser (a feed gives one per entry), then ours
    assert len(data["teasers"]) >= len(list((workspace_dir / "seeds").iterdir())) + 1
    assert data["teasers"][-1]["title"] == "A library that lends tools, not books"
    assert f"composed {len(data['teasers'])} teasers" in result.stdout


def test_compose_out_and_skip_bad(workspace_dir: Path) -> None:
    out = workspace_dir / "special"
    missing = str(workspace_dir / "missing.txt")
    result = _run(
        workspace_dir,
        "compose",
        str(ARTICLES / "orchard.txt"),
        missing,
        "--out",
        str(out),
        "--skip-bad",
    )
    assert result.exit_code == 0, result.output
    assert _composed_folder(result.stdout) == out
    assert f"skipped {missing}: " in result.stderr
    assert "warning: teaser 1" in result.stderr  # the text scrape has no URL


def test_compose_bad_source_is_an_error_and_writes_nothing(workspace_dir: Path) -> None:
    result = _run(workspace_dir, "compose", str(workspace_dir / "missing.txt"))
    assert result.exit_code == 1
    assert isinstance(result.exception, SourceError)
    assert list((workspace_dir / "issues").iterdir()) == []


def test_render_after_editing_a_teaser_shows_the_edit(workspace_dir: Path) -> None:
    composed = _run(workspace_dir, "compose", str(ARTICLES / "harbour.html"))
    folder = _composed_folder(composed.stdout)
    data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    data["teasers"][0]["title"] = "Bergen's ferries go electric"
    (folder / "issue.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    result = _run(workspace_dir, "render", str(folder))
    assert result.exit_code == 0, result.output
    size_kb = (folder / "issue.html").stat().st_size / 1024
    assert result.stdout.strip() == f"rendered {folder / 'issue.html'} ({size_kb:.1f} KB)"
    # the web version keeps Jinja's escaping of the apostrophe: read it as a browser does
    page = html.unescape((folder / "issue.html").read_text(encoding="utf-8"))
    assert "Bergen's ferries go electric" in page
    assert "Bergen's ferries go electric" in (folder / "issue.txt").read_text(encoding="utf-8")


def test_extract_json_has_the_fields_and_teaser(workspace_dir: Path) -> None:
    result = _run(workspace_dir, "extract", str(ARTICLES / "harbour.html"), "--json")
    assert result.exit_code == 0, result.output
    item = json.loads(result.stdout)
    assert {"title", "url", "image", "byline", "text", "summary"} <= set(item)
    assert item["title"] == "Harbour ferries switch to batteries"
    assert 40 <= len(item["summary"].split()) <= 60


def test_extract_plain_shows_teaser_and_text(workspace_dir: Path) -> None:
    result = _run(workspace_dir, "extract", str(ARTICLES / "library.md"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("A library that lends tools, not books\n")
    assert "byline: Joana Ferreira" in result.stdout
    assert re.search(r"^teaser \(\d+ words\):$", result.stdout, re.MULTILINE)


@pytest.mark.e2e
def test_real_console_script_compose_then_render(workspace_dir: Path) -> None:
    script = shutil.which("newsletter", path=str(Path(sys.executable).parent))
    assert script, "the newsletter console script is not installed next to this Python"
    shutil.copytree(ARTICLES, workspace_dir / "seeds" / "more")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args], cwd=workspace_dir, capture_output=True, text=True, check=False
        )

    composed = run("compose", "seeds", "seeds/more", "--intro", "Grüße aus Berlin.")
    assert composed.returncode == 0, composed.stderr
    assert "Traceback" not in composed.stderr
    folder = workspace_dir / _composed_folder(composed.stdout)
    html = (folder / "issue.html").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "Grüße aus Berlin." in html and "%%" not in html  # the reader's view
    assert "Harbour ferries switch to batteries" in (folder / "issue.txt").read_text(
        encoding="utf-8"
    )

    rendered = run("render", str(folder))
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.startswith("rendered ")

    failed = run("compose", "seeds/nope.md")
    assert failed.returncode == 1
    assert failed.stderr.strip().startswith("error: ")
    assert "nope.md" in failed.stderr and "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (workspace_dir / "issues").iterdir()) == [folder.name]

    broken = run("render", "issues/not-there")
    assert broken.returncode == 1
    assert "no such issue folder" in broken.stderr and "Traceback" not in broken.stderr


@pytest.mark.e2e
def test_the_readme_first_run_prints_no_warnings(workspace_dir: Path) -> None:
    """README command 1 on a fresh copy of the sample workspace: information, no warnings."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=workspace_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    imported = run("subscribers", "import", "subscribers/subscribers.csv")
    composed = run("compose", "seeds/", "--subject", "The Weekly Brief")
    sent = run("send", "--latest", "--yes")
    assert "sent 5, failed 0" in sent.stdout
    # every picture of the sample is its own, hosted by the issue with its size
    folder = _composed_folder(composed.stdout)
    issue = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    media = {path.name for path in (folder / "media").iterdir()}
    pictured = [teaser for teaser in issue["teasers"] if teaser["image"]]
    assert (
        len(pictured) == len(media) == len(list((workspace_dir / "seeds" / "images").glob("*.jpg")))
    )
    for teaser in pictured:
        base, name = teaser["image"].rsplit("/media/", 1)
        assert base == "https://brief.example.org" and name in media
        assert (teaser["image_width"], teaser["image_height"]) == (1200, 675)
        assert teaser["image_alt"]
    key_file = workspace_dir / "subscribers" / ".secret_key"
    # the only line on stderr: where the first command that needed a key wrote it
    assert imported.stderr + composed.stderr + sent.stderr == (
        f"generated the key that signs links in {key_file} (ignored by git; "
        "NEWSLETTER_SECRET_KEY replaces it)\n"
    )
    # README: run it again with --allow-repeats and it composes and sends a new issue,
    # still without warnings
    recomposed = run("compose", "seeds/", "--subject", "The Weekly Brief", "--allow-repeats")
    again = run("send", "--latest", "--yes")
    assert "sent 5, failed 0" in again.stdout
    assert recomposed.stderr == "" and again.stderr == ""


def _module(workspace_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, so its own logging setup is the one in force."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workspace_dir,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_script_only_page_gives_only_our_one_line_error(workspace_dir: Path) -> None:
    page = workspace_dir / "script.html"
    page.write_text("<html><body><script>var x = 1;</script></body></html>", encoding="utf-8")
    extracted = _module(workspace_dir, "extract", str(page))
    assert extracted.returncode == 1
    assert extracted.stderr.startswith("error: no article text found in ")
    assert len(extracted.stderr.splitlines()) == 1, extracted.stderr

    skipped = _module(
        workspace_dir, "compose", str(ARTICLES / "orchard.txt"), str(page), "--skip-bad"
    )
    assert skipped.returncode == 0, skipped.stderr
    assert f"skipped {page}: no article text found" in skipped.stderr
    assert "discarding data" not in skipped.stderr


def test_compose_names_every_bad_source_at_once_and_the_skip_bad_option(
    workspace_dir: Path,
) -> None:
    bad = workspace_dir / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_text("", encoding="utf-8")
    (bad / "script.html").write_text("<script>go()</script>", encoding="utf-8")
    shutil.copy(ARTICLES / "orchard.txt", bad / "orchard.txt")
    missing = workspace_dir / "missing.md"
    result = _run(workspace_dir, "compose", str(bad), str(missing))
    assert result.exit_code == 1
    message = str(result.exception)
    assert message.startswith("3 sources could not be read, nothing was written: ")
    for reason in (f"{bad / 'empty.txt'} is empty", f"in {bad / 'script.html'}", str(missing)):
        assert reason in message
    assert "--skip-bad" in message and "\n" not in message
    assert list((workspace_dir / "issues").iterdir()) == []

    one = _run(workspace_dir, "compose", str(missing))
    assert one.exit_code == 1 and "--skip-bad to leave it out" in str(one.exception)
