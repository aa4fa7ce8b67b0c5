"""Preview core without a browser: the render state machine, the figures, the frame
documents, and the wiring of `newsletter preview`."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from http_servers import serving
from newsletter.cli import cli
from newsletter.errors import NewsletterError, RenderError, StoreError
from newsletter.preview import open_preview
from newsletter.preview.audience import EXAMPLE_RECIPIENT, SampleRecipient, database_exists
from newsletter.preview.checks import GMAIL_CLIP_BYTES, check_links, measure_html
from newsletter.preview.page import DARK_MODE_STYLE, frame_document, snapshot_json
from newsletter.preview.state import PREVIEW_UNSUBSCRIBE_URL, PreviewState
from newsletter.store import Consent, open_store_for
from newsletter.web.listen import bind_socket
from newsletter.workspace import Workspace

FIXTURE_ISSUE = Path(__file__).resolve().parents[1] / "fixtures" / "preview_issue.json"
PACKAGED_THEME = Path(__file__).resolve().parents[2] / "src" / "newsletter" / "templates"


@pytest.fixture
def issue_dir(workspace: Workspace) -> Path:
    """An issue folder holding only issue.json (the fixture issue), inside the workspace."""
    folder = workspace.issues_dir / "2026-03-03-tuesday-tide"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE_ISSUE, folder / "issue.json")
    return folder


@pytest.fixture
def state(workspace: Workspace, issue_dir: Path) -> Iterator[PreviewState]:
    preview = open_preview(workspace, issue_dir)
    yield preview
    preview.close()


def edit_issue(folder: Path, **changes: Any) -> dict[str, Any]:
    """Rewrite issue.json with top-level ``changes`` (``title0`` renames the first teaser)."""
    data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    if "title0" in changes:
        data["teasers"][0]["title"] = changes.pop("title0")
    data.update(changes)
    (folder / "issue.json").write_text(
        json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return data


def override_template(workspace: Workspace) -> Path:
    """Copy the packaged issue.mjml.j2 into the workspace's templates/ and return its path."""
    workspace.templates_dir.mkdir(exist_ok=True)
    target = workspace.templates_dir / "issue.mjml.j2"
    shutil.copy(PACKAGED_THEME / "issue.mjml.j2", target)
    return target


def break_line(path: Path, line: int) -> None:
    """Put an unclosed Jinja block on ``line`` (1-based) of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(line - 1, "{% if %}\n")
    path.write_text("".join(lines), encoding="utf-8")


# --- the render state machine -------------------------------------------------------------


def test_good_render_fills_slots_for_the_example_person(state: PreviewState) -> None:
    snapshot = state.refresh()

    assert snapshot.version == 1
    assert snapshot.error is None
    good = snapshot.good
    assert good is not None and good.version == 1
    assert "A fishing harbour now heats the town behind it" in good.html
    assert "The island ferry that charges at every stop" in good.text
    assert "Alex Example" in good.html
    assert PREVIEW_UNSUBSCRIBE_URL in good.html
    assert "%%" not in good.html and "%%" not in good.text
    assert good.subject == "The Tuesday Tide — 3 March 2026"
    assert good.preheader.startswith("A harbour that heats a town")
    assert (good.sender_name, good.sender_address) == ("The Weekly Brief", "brief@example.org")
    assert good.recipients.list_name == "main"


def test_invalid_json_keeps_last_good_render_and_names_file_and_line(
    state: PreviewState, issue_dir: Path
) -> None:
    first = state.refresh()
    text = (issue_dir / "issue.json").read_text(encoding="utf-8")
    # drop the comma after the subject (line 2): a syntax error on line 3
    (issue_dir / "issue.json").write_text(text.replace('2026",\n', '2026"\n', 1), encoding="utf-8")

    broken = state.refresh()

    assert broken.version == 2
    assert broken.error is not None
    assert "issue.json" in broken.error and "line 3" in broken.error
    assert broken.good is first.good  # still showing the last good render


def test_fixing_the_file_recovers_by_itself(state: PreviewState, issue_dir: Path) -> None:
    state.refresh()
    original = (issue_dir / "issue.json").read_text(encoding="utf-8")
    (issue_dir / "issue.json").write_text(original[:-40], encoding="utf-8")
    assert state.refresh().error is not None

    edit = json.loads(original)
    edit["teasers"][0]["title"] = "Harbour heat, second draft"
    (issue_dir / "issue.json").write_text(json.dumps(edit), encoding="utf-8")
    recovered = state.refresh()

    assert recovered.error is None
    assert recovered.good is not None and recovered.good.version == recovered.version == 3
    assert "Harbour heat, second draft" in recovered.good.html


def test_broken_template_names_the_workspace_file_and_line(
    state: PreviewState, workspace: Workspace
) -> None:
    template = override_template(workspace)
    assert state.refresh().error is None
    break_line(template, 30)

    broken = state.refresh()

    assert broken.error is not None
    assert "templates/issue.mjml.j2" in broken.error
    assert "line 30" in broken.error
    assert broken.good is not None and broken.good.version == 1


def test_invalid_field_names_the_field(state: PreviewState, issue_dir: Path) -> None:
    edit_issue(issue_dir, date="next tuesday")
    snapshot = state.refresh()
    assert snapshot.good is None
    assert snapshot.error is not None and "date" in snapshot.error


def test_config_is_read_again_on_every_render(state: PreviewState, workspace: Workspace) -> None:
    state.refresh()
    config = workspace.root / "newsletter.toml"
    original = config.read_text(encoding="utf-8")
    config.write_text(
        original.replace('name = "The Weekly Brief"\naddress', 'name = "Tide Desk"\naddress'),
        encoding="utf-8",
    )
    assert state.refresh().good.sender_name == "Tide Desk"  # type: ignore[union-attr]

    config.write_text(original.replace("[sender]", "[sender"), encoding="utf-8")
    broken = state.refresh()
    assert broken.error is not None and "newsletter.toml" in broken.error
    assert broken.good is not None and broken.good.sender_name == "Tide Desk"


def test_a_deleted_issue_file_is_an_error_not_a_crash(state: PreviewState, issue_dir: Path) -> None:
    state.refresh()
    (issue_dir / "issue.json").unlink()
    snapshot = state.refresh()
    assert snapshot.error is not None and "issue.json: not found" in snapshot.error
    assert snapshot.good is not None


def test_previewing_writes_nothing_to_the_issue_folder(
    state: PreviewState, issue_dir: Path
) -> None:
    state.refresh()
    state.refresh()
    assert sorted(path.name for path in issue_dir.iterdir()) == ["issue.json"]


def test_missing_folder_and_missing_issue_json_are_one_line_errors(
    workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(RenderError, match="no such issue folder"):
        open_preview(workspace, tmp_path / "nowhere")
    with pytest.raises(RenderError, match=r"no issue\.json"):
        open_preview(workspace, tmp_path)


# --- sample recipient -------------------------------------------------------------------------


def test_slot_values_of_a_subscriber() -> None:
    person = SampleRecipient(
        email="noor@example.net", name="Noor  al-Hadid", attributes={"city": "Tyre"}
    )
    values = person.slot_values(unsubscribe_url="#u")
    assert values == {
        "email": "noor@example.net",
        "name": "Noor al-Hadid",
        "first_name": "Noor",
        "greeting_name": "Noor al-Hadid",
        "unsubscribe_url": "#u",
        "attr.city": "Tyre",
    }
    nameless = SampleRecipient(email="x@example.net").slot_values(unsubscribe_url="#u")
    assert (nameless["first_name"], nameless["greeting_name"]) == ("", "reader")


def test_example_person_is_marked_as_such(state: PreviewState) -> None:
    good = state.refresh().good
    assert good is not None
    assert good.recipient == EXAMPLE_RECIPIENT
    payload = snapshot_json(state.snapshot)
    assert payload["good"]["to"] == {
        "name": "Alex Example",
        "email": "alex@example.org",
        "example": True,
    }


def add_subscribers(workspace: Workspace, *people: tuple[str, str, dict[str, Any]]) -> None:
    """Subscribe ``people`` (email, name, attributes) to the list "main" of a real SQLite store."""
    with open_store_for(workspace) as store:
        for email, name, attributes in people:
            store.add(
                email,
                list_name="main",
                consent=Consent(source="cli"),
                name=name,
                attributes=attributes,
            )


def test_without_a_database_the_count_is_zero_with_a_hint_and_none_is_created(
    state: PreviewState, workspace: Workspace
) -> None:
    good = state.refresh().good
    assert good is not None
    assert good.recipients.count == 0
    assert "newsletter subscribers import FILE" in good.recipients.hint
    assert not database_exists(workspace)


def test_first_subscriber_of_the_default_list_is_the_sample(
    workspace: Workspace, issue_dir: Path
) -> None:
    add_subscribers(
        workspace,
        ("ines@example.net", "Inês Moreira", {"city": "Porto"}),
        ("kofi@example.net", "Kofi Mensah", {}),
    )
    state = open_preview(workspace, issue_dir)
    try:
        good = state.refresh().good
    finally:
        state.close()
    assert good is not None
    assert good.recipient.email == "ines@example.net" and good.recipient.from_store
    assert "Inês Moreira" in good.html and "Alex Example" not in good.html
    assert (good.recipients.count, good.recipients.hint) == (2, "")


def test_as_address_picks_that_subscriber(workspace: Workspace, issue_dir: Path) -> None:
    add_subscribers(
        workspace,
        ("ines@example.net", "Inês Moreira", {}),
        ("kofi@example.net", "Kofi Mensah", {"city": "Accra"}),
    )
    state = open_preview(workspace, issue_dir, as_address="Kofi@Example.net")
    try:
        good = state.refresh().good
    finally:
        state.close()
    assert good is not None
    assert good.recipient == SampleRecipient(
        email="kofi@example.net", name="Kofi Mensah", attributes={"city": "Accra"}, from_store=True
    )
    assert "Kofi Mensah" in good.html


def test_as_an_unknown_address_is_a_store_error(workspace: Workspace, issue_dir: Path) -> None:
    with pytest.raises(StoreError, match="no subscriber database yet"):
        open_preview(workspace, issue_dir, as_address="nobody@example.net")
    add_subscribers(workspace, ("ines@example.net", "Inês Moreira", {}))
    with pytest.raises(StoreError, match=r"nobody@example\.net: no subscriber with this address"):
        open_preview(workspace, issue_dir, as_address="nobody@example.net")


def test_count_follows_the_configured_list(workspace: Workspace, issue_dir: Path) -> None:
    add_subscribers(workspace, ("ines@example.net", "Inês Moreira", {}))
    state = open_preview(workspace, issue_dir)
    try:
        config = workspace.root / "newsletter.toml"
        config.write_text(
            config.read_text(encoding="utf-8").replace('list = "main"', 'list = "members"'),
            encoding="utf-8",
        )
        good = state.refresh().good
    finally:
        state.close()
    assert good is not None
    assert (good.recipients.list_name, good.recipients.count) == ("members", 0)
    assert "no list named 'members'" in good.recipients.hint


# --- figures --------------------------------------------------------------------------------


def test_images_without_alt_and_links_are_found() -> None:
    html = """<html><body>
      <img src="a.jpg" alt="A harbour">
      <img src="b.jpg">
      <img src="c.jpg" alt="  ">
      <a href="https://coast.example.org/x">Read <b>more</b></a>
      <a href="https://coast.example.org/y"><img src="d.jpg" alt="Ferry"></a>
      <a href="#unsubscribe-preview">Unsubscribe</a>
      <a name="anchor-without-href">skip</a>
    </body></html>"""
    figures = measure_html(html, warn_kb=90)

    assert [image.src for image in figures.images_without_alt] == ["b.jpg", "c.jpg"]
    assert len(figures.images) == 4
    assert [(link.url, link.text, link.checkable) for link in figures.links] == [
        ("https://coast.example.org/x", "Read more", True),
        ("https://coast.example.org/y", "Ferry", True),
        ("#unsubscribe-preview", "Unsubscribe", False),
    ]


@pytest.mark.parametrize(
    ("size", "status"),
    [
        (10 * 1024, "ok"),
        (90 * 1024, "warn"),
        (GMAIL_CLIP_BYTES - 1, "warn"),
        (GMAIL_CLIP_BYTES, "clipped"),
    ],
)
def test_size_status_against_gmail_clipping(size: int, status: str) -> None:
    html = "<p>" + "x" * (size - len("<p></p>")) + "</p>"
    figures = measure_html(html, warn_kb=90)
    assert figures.size_bytes == size
    assert figures.size_status == status


def test_size_counts_utf8_bytes() -> None:
    assert measure_html("ü", warn_kb=90).size_bytes == 2


def test_rendered_issue_figures(state: PreviewState) -> None:
    good = state.refresh().good
    assert good is not None
    figures = good.figures
    assert figures.size_bytes == len(good.html.encode("utf-8"))
    assert [image.src.rsplit("/", 1)[1] for image in figures.images] == ["harbour.jpg", "ferry.jpg"]
    # the theme falls back to the headline when image_alt is empty (the ferry teaser)
    assert figures.images_without_alt == ()
    checkable = {link.url for link in figures.links if link.checkable}
    assert "https://coast.example.org/2026/03/harbour-heat" in checkable
    assert "https://archive.example.net/keepers-logs" in checkable
    assert PREVIEW_UNSUBSCRIBE_URL not in checkable
    assert PREVIEW_UNSUBSCRIBE_URL in {link.url for link in figures.links}


class _StatusHandler(BaseHTTPRequestHandler):
    """/ok answers 200, /gone 404, /nohead refuses HEAD but answers GET."""

    def do_HEAD(self) -> None:
        code = {"/ok": 200, "/gone": 404, "/nohead": 405}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/nohead" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def link_server() -> Iterator[str]:
    with serving(_StatusHandler) as url:
        yield url


def test_check_links_against_a_real_server(link_server: str) -> None:
    closed = bind_socket("127.0.0.1", 0)
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}/x"
    closed.close()  # nothing listens there any more: connection refused
    urls = [
        f"{link_server}/ok",
        f"{link_server}/gone",
        f"{link_server}/nohead",
        dead,
        "#x",
        f"{link_server}/ok",
    ]

    results = asyncio.run(check_links(urls, timeout=5))

    by_url = {result.url: result for result in results}
    assert len(results) == 4  # distinct http(s) links only
    assert by_url[f"{link_server}/ok"].ok and by_url[f"{link_server}/ok"].status == 200
    assert not by_url[f"{link_server}/gone"].ok and by_url[f"{link_server}/gone"].status == 404
    assert by_url[f"{link_server}/nohead"].ok and by_url[f"{link_server}/nohead"].status == 200
    assert not by_url[dead].ok and by_url[dead].status is None
    assert by_url[dead].detail.startswith("unreachable")


# --- page documents ---------------------------------------------------------------------------


def test_frame_document_opens_links_in_a_new_tab_and_simulates_dark_mode(
    state: PreviewState,
) -> None:
    good = state.refresh().good
    light = frame_document(good, dark=False)
    dark = frame_document(good, dark=True)

    head_end = light.lower().index("</head>")
    assert light.index('<base target="_blank">') < head_end
    assert DARK_MODE_STYLE not in light
    assert dark.index(DARK_MODE_STYLE) < dark.lower().index("</head>")
    assert "Nothing rendered yet" in frame_document(None, dark=False)


def test_snapshot_json_carries_error_and_last_good(state: PreviewState, issue_dir: Path) -> None:
    state.refresh()
    (issue_dir / "issue.json").write_text("{", encoding="utf-8")
    payload = json.loads(json.dumps(snapshot_json(state.refresh())))

    assert payload["version"] == 2
    assert "issue.json" in payload["error"]
    good = payload["good"]
    assert good["version"] == 1
    assert good["sender"] == {"name": "The Weekly Brief", "address": "brief@example.org"}
    assert good["size"]["status"] == "ok"
    assert good["size"]["clip_bytes"] == GMAIL_CLIP_BYTES
    assert good["recipients"]["list"] == "main"
    assert any(link["url"] == PREVIEW_UNSUBSCRIBE_URL for link in good["links"])


# --- CLI wiring ---------------------------------------------------------------------------------


def test_preview_help_lists_its_options() -> None:
    result = CliRunner().invoke(cli, ["preview", "--help"])
    assert result.exit_code == 0
    for option in ("ISSUE_DIR", "--port", "--no-open", "--as ADDRESS"):
        assert option in result.output


def test_preview_of_a_missing_folder_is_one_line_and_non_zero(
    workspace_dir: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter",
            "-w",
            str(workspace_dir),
            "preview",
            "--no-open",
            str(tmp_path / "gone"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: ") and "no such issue folder" in proc.stderr
    assert proc.stdout == ""


def test_port_in_use_is_a_newsletter_error() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(NewsletterError, match=r"pick another --port \(0 picks a free one\)"):
            bind_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_an_address_not_of_this_machine_points_at_host() -> None:
    with pytest.raises(NewsletterError, match="check --host"):
        bind_socket("192.0.2.1", 0)  # TEST-NET-1: never assigned here, nothing is sent
