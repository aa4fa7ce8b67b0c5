"""Importing the files people bring: formats, tolerances, bad rows, suppression, atomic batches."""

from __future__ import annotations

import csv
import gc
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from newsletter.audience.importing import ImportReport, import_file, inspect_file
from newsletter.audience.manage import add_subscriber
from newsletter.errors import StoreError
from newsletter.store import Consent, Store, open_store
from newsletter.store.schema import consents, lists, subscribers

CSV_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
CLI = Consent(source="cli")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every import test runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'db' / 'newsletter.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as opened:
        yield opened


def refuse_subscribers(store: Store, condition: str = "TRUE") -> None:
    """Make the database itself refuse to insert a subscriber row where ``condition`` (SQL
    over NEW) holds, until ``allow_subscribers``."""
    with store.write() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON subscribers WHEN {condition} "
                    "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
                )
            )
            return
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {condition} THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON subscribers "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


def allow_subscribers(store: Store) -> None:
    """Drop the trigger of ``refuse_subscribers``."""
    with store.write() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER refuse"))
        else:
            conn.execute(text("DROP TRIGGER refuse ON subscribers"))
            conn.execute(text("DROP FUNCTION refuse()"))


def run(store: Store, path: Path, **options: Any) -> ImportReport:
    options.setdefault("list_name", None)
    options.setdefault("default_list", "main")
    return import_file(store, path, **options)


def counts(report: ImportReport) -> tuple[int, int, int, int, int]:
    c = report.counts
    return (c.added, c.updated, c.unchanged, c.suppressed, len(report.invalid))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [
        ("generic.csv", "generic"),
        ("mailchimp_subscribed.csv", "mailchimp"),
        ("mailchimp_unsubscribed.csv", "mailchimp"),
        ("listmonk.csv", "listmonk"),
        ("substack.csv", "substack"),
        ("messy.csv", "generic"),
    ],
)
def test_format_is_detected_from_the_header(store: Store, fixture: str, fmt: str) -> None:
    assert run(store, CSV_DIR / fixture).format == fmt


def test_generic_columns_become_attributes(store: Store) -> None:
    report = run(store, CSV_DIR / "generic.csv")
    assert counts(report) == (3, 0, 0, 0, 0)
    tomasz = store.get_by_email("tomasz.nowak@example.pl")
    assert tomasz is not None
    assert tomasz.name == "Nowak, Tomasz"
    assert tomasz.attributes == {"city": "Gdańsk", "member_since": "2021"}
    empty = store.get_by_email("oluwaseun@example.ng")
    assert empty is not None and empty.name == "" and empty.attributes == {"city": "Lagos"}


def test_mailchimp_audience_export(store: Store) -> None:
    report = run(store, CSV_DIR / "mailchimp_subscribed.csv", list_name="news")
    assert counts(report) == (2, 0, 0, 0, 0)
    hana = store.get_by_email("hana.sato@example.jp")
    assert hana is not None
    assert hana.name == "Hana Sato"
    assert hana.attributes == {
        "company": "Sato & Daughters, Ltd.",
        "birthday": "04/12",
        "timezone": "Asia/Tokyo",
        "tags": "vip",
    }
    data = store.describe("hana.sato@example.jp")
    assert data is not None
    [consent] = data["consents"]
    assert consent["source"] == "import" and consent["ip"] == "198.51.100.7"
    assert consent["detail"]["optin_time"] == "2023-02-01 09:15:00"
    assert (
        consent["detail"]["file"] == "mailchimp_subscribed.csv" and consent["detail"]["line"] == 2
    )
    assert data["lists"][0]["confirmed_at"] == "2023-02-01T09:20:31+00:00"
    pieter = store.get_by_email("pieter.devries@example.nl")
    assert pieter is not None and pieter.attributes == {"notes": "met at the fair"}


def test_mailchimp_unsubscribed_and_cleaned_exports_suppress(store: Store) -> None:
    run(store, CSV_DIR / "mailchimp_subscribed.csv")
    report = run(store, CSV_DIR / "mailchimp_unsubscribed.csv")
    assert counts(report) == (0, 0, 0, 2, 0)
    hana = store.get_by_email("hana.sato@example.jp")
    assert hana is not None and hana.status == "unsubscribed"
    # someone we never had: only the hash is kept, and it blocks
    assert store.get_by_email("never.here@example.org") is None
    assert store.is_suppressed("never.here@example.org")
    assert counts(run(store, CSV_DIR / "mailchimp_cleaned.csv")) == (0, 0, 0, 1, 0)
    assert store.count(status="bounced") == 1
    assert [r.email for r in store.iter_recipients("main")] == []


def test_listmonk_export_with_json_attributes(store: Store) -> None:
    report = run(store, CSV_DIR / "listmonk.csv")
    assert counts(report) == (1, 0, 0, 1, 1)
    assert report.invalid[0][0] == 4 and "not valid JSON" in report.invalid[0][1]
    amara = store.get_by_email("amara.okafor@example.com")
    assert amara is not None
    assert amara.attributes == {"city": "Enugu", "projects": 3, "tags": ["a", "b"]}
    assert store.is_suppressed("lars.berg@example.se")


def test_substack_export(store: Store) -> None:
    report = run(store, CSV_DIR / "substack.csv")
    assert counts(report) == (2, 0, 0, 1, 0)
    paying = store.get_by_email("paying.reader@example.com")
    assert paying is not None
    assert paying.attributes["plan"] == "yearly"
    assert paying.attributes["active_subscription"] == "true"
    assert "email_disabled" not in paying.attributes
    assert store.is_suppressed("gone.reader@example.com")


def test_format_option_overrides_detection(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", b'email,name,attributes\nx@example.com,X,"{""a"": 1}"\n')
    assert run(store, path).format == "listmonk"
    report = run(store, path, fmt="generic")
    assert report.format == "generic"
    with pytest.raises(StoreError, match="unknown format"):
        run(store, path, fmt="excel")


# -- tolerances ---------------------------------------------------------------------------------


def test_messy_file_blank_lines_quoted_newlines_duplicates_and_bad_rows(store: Store) -> None:
    report = run(store, CSV_DIR / "messy.csv")
    assert report.invalid == [
        (5, "'not-an-address' is not a valid email address: An email address must have an @-sign."),
        (6, "no email address"),
    ]
    assert counts(report) == (2, 0, 0, 0, 2)
    assert report.counts.duplicates == 1
    assert report.rows == 5
    one = store.get_by_email("valid.one@example.com")
    assert one is not None and one.name == "Valid One Again"  # later row wins
    assert one.attributes == {"note": "duplicate in other case"}
    assert store.count() == 2
    assert "2 added" in report.summary() and "2 invalid" in report.summary()


def test_utf8_bom_semicolons_and_windows_line_endings(store: Store, tmp_path: Path) -> None:
    data = "\ufeffE-Mail;Name;Stadt\r\nzoe@example.com;Zoë Ångström;Köln\r\n\r\n".encode()
    report = run(store, write(tmp_path, "excel.csv", data))
    assert (report.delimiter, report.encoding) == (";", "utf-8-sig")
    assert counts(report) == (1, 0, 0, 0, 0)
    zoe = store.get_by_email("zoe@example.com")
    assert zoe is not None and zoe.name == "Zoë Ångström" and zoe.attributes == {"stadt": "Köln"}


def test_latin1_file_is_detected(store: Store, tmp_path: Path) -> None:
    data = "email,name\r\ninés@example.es,Inés Núñez\r\nfrancois@example.fr,François\r\n"
    path = write(tmp_path, "latin1.csv", data.encode("latin-1"))
    report = run(store, path)
    assert report.encoding == "cp1252" and counts(report) == (2, 0, 0, 0, 0)
    ines = store.get_by_email("inés@example.es")
    assert ines is not None and ines.name == "Inés Núñez"


def test_encoding_option_and_a_wrong_one(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "l1.csv", "email,name\nx@example.com,Søren\n".encode("latin-1"))
    report = run(store, path, encoding="latin-1")
    assert report.encoding == "iso8859-1"
    sub = store.get_by_email("x@example.com")
    assert sub is not None and sub.name == "Søren"
    with pytest.raises(StoreError, match="not utf-8 text"):
        run(store, path, encoding="utf-8")
    with pytest.raises(StoreError, match="unknown encoding"):
        run(store, path, encoding="klingon")


def test_utf16_tab_separated_excel_unicode_text(store: Store, tmp_path: Path) -> None:
    data = "Email\tName\r\nu16@example.com\tÜma\r\n".encode("utf-16")
    report = run(store, write(tmp_path, "u16.txt", data))
    assert (report.encoding, report.delimiter) == ("utf-16", "\t")
    assert counts(report) == (1, 0, 0, 0, 0)


def test_excel_sep_line(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "sep.csv", b"sep=|\nemail|name\nbar@example.com|Bar, Baz\n")
    assert inspect_file(path).sep_line
    report = run(store, path)
    assert counts(report) == (1, 0, 0, 0, 0)
    sub = store.get_by_email("bar@example.com")
    assert sub is not None and sub.name == "Bar, Baz"


def test_rows_with_extra_fields_are_reported(store: Store, tmp_path: Path) -> None:
    data = b"email,name\nok@example.com,Ok,\nbad@example.com,Smith, John\n"
    report = run(store, write(tmp_path, "x.csv", data))
    assert counts(report) == (1, 0, 0, 0, 1)
    assert report.invalid[0][0] == 3 and "3 fields where the header has 2" in report.invalid[0][1]


def test_a_never_closed_quote_is_reported_at_its_line(store: Store, tmp_path: Path) -> None:
    big = "x" * 200_000  # past the csv module's field limit
    data = f'email,name\nok@example.com,Ok\nq@example.com,"{big}\n'.encode()
    report = run(store, write(tmp_path, "q.csv", data))
    assert counts(report)[0] == 1
    assert report.invalid[0][0] == 3 and "unreadable CSV" in report.invalid[0][1]


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,city\nAda,London\n", "no email column in the header"),
        (b"\n\n  \n", "the file is empty"),
        (b"", "the file is empty"),
    ],
)
def test_unusable_files_are_refused_before_anything_is_written(
    store: Store, tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        run(store, write(tmp_path, "x.csv", data))
    with store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(subscribers)) == 0
        assert conn.scalar(select(func.count()).select_from(lists)) == 0


def test_missing_file(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such file"):
        run(store, tmp_path / "nope.csv")


# -- suppression on re-import -------------------------------------------------------------------


def test_reimport_never_resubscribes_people_who_left(store: Store) -> None:
    path = CSV_DIR / "generic.csv"
    run(store, path)
    store.unsubscribe("marta.ruiz@example.com", consent=CLI)
    store.mark_bounced("tomasz.nowak@example.pl")
    store.mark_complained("oluwaseun@example.ng")
    report = run(store, path)
    assert counts(report) == (0, 0, 0, 3, 0)
    assert store.count(list_name="main", status="active") == 0
    with pytest.raises(StoreError, match="new consent"):
        run(store, path, resubscribe="  ")
    report = run(store, path, resubscribe="all three re-confirmed by email, 2026-02-01")
    assert report.counts.resubscribed == 3 and "3 resubscribed" in report.summary()
    assert store.count(list_name="main", status="active") == 3


def test_leaving_one_list_is_respected_but_another_list_is_fine(store: Store) -> None:
    path = CSV_DIR / "generic.csv"
    run(store, path, list_name="weekly")
    store.unsubscribe("marta.ruiz@example.com", list_name="weekly", consent=CLI)
    assert counts(run(store, path, list_name="weekly")) == (0, 0, 2, 1, 0)
    assert counts(run(store, path, list_name="monthly")) == (3, 0, 0, 0, 0)


def test_a_bad_list_name_in_the_file_is_a_bad_row(store: Store, tmp_path: Path) -> None:
    long = "x" * 150
    data = f"email,lists\nok@example.com,main\nbad@example.com,{long}\n".encode()
    report = run(store, write(tmp_path, "l.csv", data))
    assert counts(report) == (1, 0, 0, 0, 1)
    assert report.invalid[0][0] == 3 and "lists: list name" in report.invalid[0][1]


def test_updates_are_counted(store: Store, tmp_path: Path) -> None:
    run(store, CSV_DIR / "generic.csv")
    data = b"email,city\nmarta.ruiz@example.com,Madrid\nnew@example.com,Rome\n"
    report = run(store, write(tmp_path, "u.csv", data))
    assert counts(report) == (1, 1, 0, 0, 0)
    marta = store.get_by_email("marta.ruiz@example.com")
    assert marta is not None and marta.name == "Marta Ruiz"  # no name column: name kept
    assert marta.attributes == {"city": "Madrid", "member_since": "2019"}


# -- batches: one transaction each --------------------------------------------------------------


def _big_file(tmp_path: Path, n: int) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name"])
    for i in range(n):
        writer.writerow([f"user{i:05d}@example.com", f"User {i}"])
    return write(tmp_path, "big.csv", buffer.getvalue().encode())


def test_a_database_failure_mid_import_leaves_no_half_batch(store: Store, tmp_path: Path) -> None:
    path = _big_file(tmp_path, 3000)
    # the database itself refuses one row of the third batch
    refuse_subscribers(store, "NEW.email = 'user02500@example.com'")
    with pytest.raises(StoreError, match=r"big.csv:2002: import stopped.*refused by test trigger"):
        run(store, path, batch_size=1000)
    assert store.count() == 2000
    with store.read() as conn:
        emails = set(conn.scalars(select(subscribers.c.email)))
        assert conn.scalar(select(func.count()).select_from(consents)) == 2000
    assert "user01999@example.com" in emails
    assert "user02000@example.com" not in emails  # inserted before the failing row, rolled back
    allow_subscribers(store)
    report = run(store, path, batch_size=1000)
    assert counts(report) == (1000, 0, 2000, 0, 0)


def test_a_list_created_by_a_failed_batch_is_not_remembered(store: Store, tmp_path: Path) -> None:
    path = _big_file(tmp_path, 3)
    refuse_subscribers(store)
    with pytest.raises(StoreError, match="refused by test trigger"):
        run(store, path, list_name="fresh")
    assert store.list_id("fresh") is None
    allow_subscribers(store)
    assert counts(run(store, path, list_name="fresh")) == (3, 0, 0, 0, 0)
    assert store.count(list_name="fresh", status="active") == 3


def test_a_bad_list_name_is_refused_before_reading(store: Store) -> None:
    with pytest.raises(StoreError, match="list name 'a;b' is not usable"):
        run(store, CSV_DIR / "generic.csv", list_name="a;b")
    assert store.count() == 0


def test_an_interrupted_batch_is_rolled_back(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsletter.store.bulk_write as bulk_write

    calls = {"n": 0}
    real = bulk_write.record_consents

    def interrupt_on_second_batch(conn: Any, rows: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # subscribers and memberships of batch 2 are already inserted
            raise KeyboardInterrupt
        real(conn, rows)

    monkeypatch.setattr(bulk_write, "record_consents", interrupt_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run(store, _big_file(tmp_path, 250), batch_size=100)
    assert store.count() == 100
    assert store.count(list_name="main", status="active") == 100


def test_progress_after_each_batch_counts_the_rows_up_to_its_last_one(
    store: Store, tmp_path: Path
) -> None:
    data = b"email,name\n" + b"".join(
        (b"not an address,Bad\n" if i % 4 == 3 else f"u{i}@example.com,U{i}\n".encode())
        for i in range(20)
    )
    seen: list[tuple[int, int, int]] = []
    report = run(
        store,
        write(tmp_path, "p.csv", data),
        batch_size=5,
        on_batch=lambda r: seen.append((r.rows, len(r.invalid), store.count())),
    )
    # after each batch: the rows up to its last one, their bad ones, and no more
    assert seen == [(6, 1, 5), (13, 3, 10), (19, 4, 15)]
    assert (report.rows, counts(report)) == (20, (15, 0, 0, 0, 5))
    assert report.invalid[-1][0] == 21


def test_a_read_error_stops_the_import_after_the_batches_before_it(
    store: Store, tmp_path: Path
) -> None:
    # past the first 64 KB, which are read (and refused) before anything is written
    rows = [f"u{i}@example.com,{'U' * 60}\n".encode() for i in range(2000)]
    rows[1800] = "u1800@example.com,Søren\n".encode("latin-1")
    path = write(tmp_path, "e.csv", b"email,name\n" + b"".join(rows))
    # (the line named is where the decoder's 8 KB chunk with the bad byte begins)
    with pytest.raises(StoreError, match=r"e\.csv:1[78]\d\d: not utf-8 text"):
        run(store, path, encoding="utf-8", batch_size=500)
    assert store.count() == 1500  # the whole batches before the line; nothing of the next


def test_duplicates_across_batches_end_with_the_last_row(store: Store, tmp_path: Path) -> None:
    data = b"email,name\n" + b"".join(f"u{i}@example.com,U{i}\n".encode() for i in range(5))
    data += b"U0@EXAMPLE.COM,Last Word\n"
    report = run(store, write(tmp_path, "d.csv", data), batch_size=3)
    assert counts(report) == (5, 1, 0, 0, 0)
    u0 = store.get_by_email("u0@example.com")
    assert u0 is not None and u0.name == "Last Word"


def test_another_writer_during_an_import(db_url: str, store: Store, tmp_path: Path) -> None:
    """The web process unsubscribes people while a big import runs: both complete (WAL)."""
    store.add("reader@example.com", list_name="main", consent=CLI)
    web = open_store(db_url)
    first_batch = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def web_process() -> None:
        try:
            first_batch.wait(timeout=60)
            for i in range(20):
                web.unsubscribe(f"user{i:05d}@example.com", consent=CLI)
                assert web.count() >= 1  # reads go on while the importer writes
            web.unsubscribe("reader@example.com", consent=CLI)
        except BaseException as exc:  # asserted below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=web_process)
    thread.start()
    report = run(
        store, _big_file(tmp_path, 2000), batch_size=200, on_batch=lambda _: first_batch.set()
    )
    thread.join()
    web.close()
    assert errors == [] and done.is_set()
    assert report.counts.added + report.counts.suppressed == 2000
    assert store.count() == 2001
    assert store.count(status="unsubscribed") == 21
    assert store.is_suppressed("reader@example.com")


def test_an_import_leaves_the_garbage_collector_as_it_found_it(
    store: Store, tmp_path: Path
) -> None:
    run(store, CSV_DIR / "generic.csv")
    assert gc.get_freeze_count() == 0  # what it froze while running is unfrozen
    with pytest.raises(StoreError):
        run(store, write(tmp_path, "x.csv", b"name\nAda\n"))
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a process that freezes objects itself keeps them frozen
    try:
        run(store, CSV_DIR / "generic.csv")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_import_logs_no_subscriber_data(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run(store, CSV_DIR / "mailchimp_subscribed.csv")
    assert caplog.text  # the summary is logged...
    for secret in ("hana.sato", "Hana", "198.51.100.7", "Sato & Daughters"):
        assert secret not in caplog.text  # ...without anyone's data


def test_an_unclosed_quote_is_named_when_it_swallows_lines(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "quote.csv",
        b'email,name\nok1@example.com,One\n"broken@example.com,Unclosed\nok2@example.com,Two\n',
    )
    report = run(store, path)
    [(line, reason)] = report.invalid
    assert line == 3
    assert "lines 3-4" in reason and "unclosed quote" in reason


def test_a_nul_byte_is_a_bad_row_named_by_its_own_line(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_text(
        "email,name,city\n"
        "a@example.com,Ann,Oslo\n"
        "b@example.com,B\x00b,Bergen\n"
        "c@example.com,Cy,Tr\x00mso\n"
        "d@example.com,Di,Bod\n",
        encoding="utf-8",
    )
    report = run(store, path, batch_size=10)
    assert report.invalid == [
        (3, "name contains a NUL character"),
        (4, "attribute 'city' contains a NUL character"),
    ]
    assert (report.counts.added, store.count()) == (2, 2)


def test_rows_with_a_nul_byte_leave_their_batch_filled_from_the_rows_after(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "nul.csv"
    path.write_text(
        "email,name,city\n"
        "a@example.com,Ann,Oslo\n"
        "b@example.com,B\x00b,Bergen\n"
        ",No Address,Hamar\n"
        "c@example.com,Cy,Tr\x00mso\n"
        "d@example.com,Di,Bodø\n"
        "e@example.com,Ed,Alta\n",
        encoding="utf-8",
    )
    seen: list[tuple[int, int, int]] = []
    report = run(
        store,
        path,
        batch_size=2,
        on_batch=lambda r: seen.append((r.rows, len(r.invalid), store.count())),
    )
    assert report.invalid == [
        (3, "name contains a NUL character"),
        (4, "no email address"),
        (5, "attribute 'city' contains a NUL character"),
    ]
    assert seen == [(5, 3, 2), (6, 3, 3)]  # a and d, then e
    assert (report.counts.added, store.count()) == (3, 3)


@pytest.mark.parametrize(
    ("given", "name", "stored_name"),
    [
        ("Zoë Ångström <Zoe@Example.com>", "", "Zoë Ångström"),
        ('"Smith, Jo" <zoe@example.com>', "", "Smith, Jo"),
        ("Zoë Ångström <zoe@example.com>", "Z. Å.", "Z. Å."),
        ("<zoe@example.com>", "", ""),
    ],
)
def test_add_takes_a_display_name_with_the_address(
    store: Store, given: str, name: str, stored_name: str
) -> None:
    assert add_subscriber(store, given, list_name="main", name=name) == (
        "zoe@example.com: added (main)"
    )
    sub = store.get_by_email("zoe@example.com")
    assert sub is not None and sub.name == stored_name


def test_add_refuses_angle_brackets_without_an_address(store: Store) -> None:
    with pytest.raises(StoreError, match="is not an address"):
        add_subscriber(store, "Zoë <>", list_name="main")
    assert store.count() == 0


# -- mixed encodings and pasted files -----------------------------------------------------------


def test_a_file_mixing_utf8_and_latin1_is_refused_at_its_first_latin1_line(
    store: Store, tmp_path: Path
) -> None:
    data = "email,name\nzoe@example.com,Zoë Ünal\nok@example.com,Ok\n".encode() + (
        "muller@example.de,Müller\n".encode("latin-1")
    )
    with pytest.raises(StoreError, match=r"mixed\.csv:4: this line is not UTF-8") as caught:
        run(store, write(tmp_path, "mixed.csv", data))
    assert "line 2 is" in caught.value.message and "--encoding" in (caught.value.hint or "")
    with store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(subscribers)) == 0
    report = run(store, write(tmp_path, "mixed.csv", data), encoding="cp1252")
    assert counts(report) == (3, 0, 0, 0, 0)  # the user's own choice is taken as given


def test_a_byte_order_mark_inside_the_file_is_a_bad_row(store: Store, tmp_path: Path) -> None:
    data = b"email,name\nok@example.com,Ok\n\xff\xfe@example.com,\nn\xe9e@example.com,N\xe9e\n"
    report = run(store, write(tmp_path, "pasted.csv", data))
    assert report.encoding == "cp1252" and counts(report) == (2, 0, 0, 0, 1)
    assert report.invalid[0][0] == 3 and "byte order mark" in report.invalid[0][1]
    assert store.get_by_email("ÿþ@example.com") is None


def test_a_utf8_byte_order_mark_inside_a_utf8_file_is_a_bad_row(
    store: Store, tmp_path: Path
) -> None:
    data = "\ufeffemail,name\nzoe@example.com,Zoë\n\ufeffok@example.com,Ok\n".encode()
    report = run(store, write(tmp_path, "pasted.csv", data))
    assert counts(report) == (1, 0, 0, 0, 1)
    assert report.invalid[0][0] == 3 and "byte order mark" in report.invalid[0][1]
