"""Benchmark: the whole send path (``deliver.send_issue``) under the shared SMTP benchmark.

Two steps, because bench_smtp.sh times the whole sender command and the setup
(workspace, 5,000-subscriber database, composing the issue) is not part of a send:

    python bench/bench_send.py prepare --out WS --n 5000
    bench_smtp.sh -n 5000 -r 3 \
        'python bench/bench_send.py send --workspace WS --port {port} --n {n}'

``prepare`` makes a workspace from the repository's sample one: its seeds composed into
``issues/base`` (teasers dropped until the personalised message is about ``--size``
bytes on the wire, 40 KB by default) and a SQLite database of N active subscribers.

``send`` is what is timed: it copies ``issues/base`` to a new issue folder (so every
round is a new campaign) and runs ``send_issue`` with ``NEWSLETTER_SMTP_URL`` pointing at
the sink: interpreter and imports, the issue's render (the one compose made, reused
while its stamp is fresh, as in a user's send; ``--render`` drops the stamp so the send
renders again, ~0.5 s more), campaign snapshot, enqueue of N rows, then per message the
claim (committed ``sending``), token, slot filling, headers, VERP, SMTP, and the outcome
committed. It exits 1 unless all N were sent. ``--cli`` runs ``newsletter send FOLDER
--yes`` instead (this process becomes it after the copy): the user's whole command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from population import insert_members

REPO = Path(__file__).resolve().parents[1]
BENCH_KEY = "bench-key-not-secret"


def copy_sample(root: Path) -> None:
    """The repository's sample workspace (config, templates, seeds) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for folder in ("templates", "seeds"):
        if (REPO / folder).exists():
            shutil.copytree(REPO / folder, root / folder, dirs_exist_ok=True)
    (root / "issues").mkdir(exist_ok=True)


def wire_size(root: Path, folder: Path) -> int:
    """Bytes on the wire of the issue in ``folder`` personalised for a sample reader."""
    from newsletter.compose.issue_file import read_issue
    from newsletter.deliver.content import make_template
    from newsletter.render.pipeline import render_issue
    from newsletter.store.records import Recipient
    from newsletter.workspace import load_workspace

    ws = load_workspace(root)
    rendered = render_issue(ws, read_issue(folder))
    template = make_template(
        ws,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        label="probe",
        list_id=1,
        list_name="main",
        campaign_id=1,
    )
    return len(template.personalise(Recipient(1, "member00000001@example.org", "Member 1")))


def compose_sized(root: Path, target: int) -> int:
    """Compose the seeds into issues/base, dropping teasers until about ``target`` bytes."""
    from newsletter.compose.build import compose_issue
    from newsletter.compose.folder import render_issue_folder
    from newsletter.workspace import load_workspace

    ws = load_workspace(root)
    folder = root / "issues" / "base"
    compose_issue(
        ws,
        [str(root / "seeds")],
        subject="The Weekly Brief",
        intro="This week's stories, picked by the desk.",
        preheader="",
        out=folder,
        skip_bad=False,
    )
    size = wire_size(root, folder)
    while size > target * 1.1:
        data = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
        if len(data["teasers"]) <= 1:
            break
        data["teasers"].pop()
        (folder / "issue.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        render_issue_folder(ws, folder)
        size = wire_size(root, folder)
    return size


def populate(root: Path, count: int) -> None:
    """``count`` active subscribers on list main in the workspace's database."""
    from newsletter.store import open_store_for
    from newsletter.workspace import load_workspace

    with open_store_for(load_workspace(root)) as store:
        insert_members(store, count)


def prepare(out: Path, count: int, size: int) -> None:
    """Make the benchmark workspace in ``out`` (must not exist yet)."""
    if out.exists():
        sys.exit(f"{out} exists; give a new folder")
    os.environ["NEWSLETTER_SECRET_KEY"] = BENCH_KEY
    started = time.perf_counter()
    copy_sample(out)
    wire = compose_sized(out, size)
    populate(out, count)
    print(
        f"prepared {out}: {count} subscribers, message {wire} bytes on the wire, "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


def send(
    root: Path, port: int, count: int, connections: int, render: bool, cli: bool = False
) -> None:
    """Send a fresh copy of issues/base to list main through 127.0.0.1:``port``
    (``render``: without the render stamp, so the send renders the issue again; ``cli``:
    through ``newsletter send --yes``, which this process becomes)."""
    os.environ["NEWSLETTER_SECRET_KEY"] = BENCH_KEY
    os.environ["NEWSLETTER_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    from newsletter.deliver import send_issue
    from newsletter.render.stamp import STAMP_FILE
    from newsletter.workspace import load_workspace

    started = time.perf_counter()
    ws = load_workspace(root)
    folder = root / "issues" / f"run-{time.time_ns()}"
    shutil.copytree(root / "issues" / "base", folder)
    if render:
        (folder / STAMP_FILE).unlink(missing_ok=True)
    if cli:  # the user's command line; bench_smtp.sh counts what the sink accepted
        command = ["newsletter", "send", str(folder), "--yes", "--connections", str(connections)]
        os.chdir(root)
        os.execv(sys.executable, [sys.executable, "-m", *command])
    report = send_issue(ws, folder, connections=connections)
    seconds = time.perf_counter() - started
    print(
        f"{report.summary()} secs={seconds:.3f} msgs/s={report.sent / seconds:.1f} "
        f"connections={connections} opened={report.connections_opened}",
        file=sys.stderr,
    )
    if report.sent != count:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    make = steps.add_parser("prepare", help="make the workspace and database")
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--n", type=int, default=5000)
    make.add_argument("--size", type=int, default=40_000, help="wire bytes per message")
    run = steps.add_parser("send", help="the timed send")
    run.add_argument("--workspace", type=Path, required=True)
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--n", type=int, default=5000)
    run.add_argument("--connections", type=int, default=4)
    run.add_argument("--render", action="store_true", help="render again (drop the stamp)")
    run.add_argument("--cli", action="store_true", help="through the newsletter command line")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.out, args.n, args.size)
    else:
        send(args.workspace, args.port, args.n, args.connections, args.render, args.cli)


if __name__ == "__main__":
    main()
