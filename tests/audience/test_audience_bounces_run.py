"""``newsletter bounces`` over files, Maildirs and mboxes: every fixture counted once, a
message that breaks is listed and the run goes on, and the CLI's warnings and exit codes.
"""

from __future__ import annotations

import mailbox
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from bounce_samples import (
    ADA,
    FIXTURES,
    GRACE,
    INES,
    KOFI,
    LINUS,
    complaint_with_broken_link,
    fixture,
    sendable,
    status_of,
)
from click.testing import CliRunner, Result

from newsletter.audience.bounces.classify import Classification
from newsletter.audience.bounces.run import process_paths
from newsletter.cli import cli
from newsletter.errors import BounceSourceError
from newsletter.store import open_store_for
from newsletter.workspace import Workspace

# --- files, Maildirs, mboxes and the CLI -------------------------------------------------------

ALL = sorted(path.name for path in FIXTURES.glob("*.eml"))
FULL_RUN = (
    "10 messages: hard 1, soft 3, complaints 1, "
    "ignored 5 (nothing to do 2, forged 1, unsigned 2), suppressed 2"
)


def test_every_fixture_is_counted_once(ws: Workspace) -> None:
    report = process_paths(ws, [FIXTURES / name for name in ALL])
    assert report.summary() == FULL_RUN
    assert (report.forged, report.unsigned, report.unmatched, report.duplicates) == (1, 2, 0, 0)
    assert (report.unreadable, report.unclassified, report.incomplete) == ([], [], False)
    again = process_paths(ws, [FIXTURES / name for name in ALL])
    assert again.summary() == (
        "10 messages: hard 0, soft 0, complaints 0, ignored 10 "
        "(nothing to do 2, already processed 5, forged 1, unsigned 2), suppressed 0"
    )
    assert again.duplicates == 5


def test_one_message_that_breaks_classification_does_not_stop_the_run(
    ws: Workspace, tmp_path: Path
) -> None:
    # the reviewer's Maildir: a complaint whose attached original has an unparseable link
    box = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1-evil").write_bytes(complaint_with_broken_link())
    (box / "new" / "2-real").write_bytes(fixture("hard-5.1.1.eml"))
    report = process_paths(ws, [box])
    assert report.summary() == "2 messages: hard 1, soft 0, complaints 1, ignored 0, suppressed 2"
    assert (report.unclassified, report.incomplete) == ([], False)


def test_an_unexpected_error_on_one_message_is_reported_and_the_rest_processed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a bug we do not know of yet, in the parser or the store, on one message only
    import newsletter.audience.bounces.process as bounces

    real_classify = bounces.classify

    def breaks_on_the_marker(data: bytes, **kwargs: object) -> Classification:
        if b"X-Breaks: yes" in data:
            raise RuntimeError("unexpected\nstate")
        return real_classify(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bounces, "classify", breaks_on_the_marker)
    (tmp_path / "1.eml").write_bytes(b"X-Breaks: yes\n" + fixture("complaint-arf.eml"))
    (tmp_path / "2.eml").write_bytes(fixture("hard-5.1.1.eml"))
    with caplog.at_level("INFO", logger="newsletter.audience.bounces"):
        report = process_paths(ws, [tmp_path / "1.eml", tmp_path / "2.eml"])
    assert report.unclassified == [(str(tmp_path / "1.eml"), "RuntimeError: unexpected state")]
    assert report.incomplete
    assert report.summary() == (
        "2 messages: hard 1, soft 0, complaints 0, ignored 0, could not classify 1, suppressed 1"
    )
    assert "RuntimeError" in caplog.text and str(tmp_path / "1.eml") in caplog.text
    with open_store_for(ws) as store:
        assert (status_of(store, GRACE), status_of(store, ADA)) == ("bounced", "active")


@pytest.mark.parametrize("only", ["new", "cur"])
def test_a_maildir_with_only_new_or_only_cur_is_read(
    ws: Workspace, tmp_path: Path, only: str
) -> None:
    (tmp_path / "Maildir" / only).mkdir(parents=True)
    (tmp_path / "Maildir" / only / "1764576902.M1P2.mx:2,S").write_bytes(fixture("hard-5.1.1.eml"))
    (tmp_path / "Maildir" / only / ".hidden").write_bytes(fixture("complaint-arf.eml"))
    report = process_paths(ws, [tmp_path / "Maildir"])
    assert report.summary() == "1 message: hard 1, soft 0, complaints 0, ignored 0, suppressed 1"
    assert report.unreadable == []


def test_a_missing_path_stops_before_anything_is_processed(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(BounceSourceError, match=r"nowhere\.mbox: no such file"):
        process_paths(ws, [FIXTURES / "hard-5.1.1.eml", tmp_path / "nowhere.mbox"])
    with open_store_for(ws) as store:
        assert status_of(store, GRACE) == "active"


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(ws: Workspace) -> Invoke:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["-w", str(ws.root), "bounces", *args])

    return run


def test_cli_on_a_maildir_with_new_and_cur(invoke: Invoke, ws: Workspace, tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for number, name in enumerate(ALL):
        message = mailbox.MaildirMessage(fixture(name))
        if number % 2:
            message.set_subdir("cur")
            message.set_flags("S")
        box.add(message)
    box.close()
    assert len(list((tmp_path / "Maildir" / "cur").iterdir())) == 5

    result = invoke(str(tmp_path / "Maildir"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == FULL_RUN
    with open_store_for(ws) as store:
        assert (status_of(store, GRACE), status_of(store, ADA)) == ("bounced", "complained")
        # Kofi's bounce is unsigned (nothing of ours in it); two warnings about one
        # message are one soft bounce for Inés
        assert sendable(store) == {LINUS, INES, KOFI}


def test_cli_on_an_mbox_warns_about_unreadable_paths(
    invoke: Invoke, ws: Workspace, tmp_path: Path
) -> None:
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    for name in ("hard-5.1.1.eml", "soft-4.2.2.eml", "auto-reply.eml"):
        box.add(fixture(name))
    box.close()
    (tmp_path / "empty.eml").write_bytes(b"")
    (tmp_path / "folder").mkdir()

    args = (str(tmp_path / "bounces.mbox"), str(tmp_path / "empty.eml"), str(tmp_path / "folder"))
    result = invoke(*args)
    assert result.exit_code == 1, result.output  # so that cron tells someone
    assert result.stdout.strip() == (
        "3 messages: hard 1, soft 1, complaints 0, ignored 1 (nothing to do 1), "
        "suppressed 1; could not read 2"
    )
    assert f"warning: cannot read {tmp_path / 'empty.eml'}: empty file" in result.stderr
    assert (
        f"warning: cannot read {tmp_path / 'folder'}: a folder but not a Maildir" in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 2
    again = invoke(str(tmp_path / "bounces.mbox"))
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == (
        "3 messages: hard 0, soft 0, complaints 0, "
        "ignored 3 (nothing to do 1, already processed 2), suppressed 0"
    )
    with open_store_for(ws) as store:
        assert status_of(store, GRACE) == "bounced" and status_of(store, LINUS) == "active"


def short_socket_path(tmp_path: Path) -> Path:
    """A UNIX socket file: it exists, but opening it fails for any user, root too."""
    server = socket.socket(socket.AF_UNIX)
    path = tmp_path / "s.eml"
    # AF_UNIX paths are limited to ~107 bytes: bind by a relative name from the folder
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        server.bind("s.eml")
    finally:
        os.chdir(cwd)
    server.close()
    return path


def test_cli_an_unreadable_file_is_a_warning_and_the_rest_is_processed(
    invoke: Invoke, ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = short_socket_path(tmp_path)
    (tmp_path / "hard.eml").write_bytes(fixture("hard-5.1.1.eml"))
    denied = tmp_path / "denied.eml"
    denied.write_bytes(fixture("complaint-arf.eml"))
    real_access = os.access
    # what os.access answers a user without read permission (tests run as root here)
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: Path(path) != denied and real_access(path, mode)
    )
    result = invoke(str(blocked), str(denied), str(tmp_path / "hard.eml"))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"warning: cannot read {blocked}: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout.strip() == (
        "2 messages: hard 1, soft 0, complaints 1, ignored 0, suppressed 2; could not read 1"
    )
    with open_store_for(ws) as store:
        assert (status_of(store, GRACE), status_of(store, ADA)) == ("bounced", "complained")


def test_cli_exits_1_when_a_message_could_not_be_classified(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsletter.audience.bounces.process as bounces

    def broken(data: bytes, **kwargs: object) -> Classification:
        raise LookupError("no codec")

    monkeypatch.setattr(bounces, "classify", broken)
    (tmp_path / "one.eml").write_bytes(fixture("delivered.eml"))
    result = invoke(str(tmp_path / "one.eml"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"warning: could not classify {tmp_path / 'one.eml'}: LookupError: no codec\n"
    )
    assert result.stdout.strip() == (
        "1 message: hard 0, soft 0, complaints 0, ignored 0, could not classify 1, suppressed 0"
    )


def test_cli_missing_path_is_an_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert isinstance(result.exception, BounceSourceError)
    assert str(tmp_path / "missing") in str(result.exception)


def test_cli_needs_a_path(invoke: Invoke) -> None:
    assert invoke().exit_code == 2
