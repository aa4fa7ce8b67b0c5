"""Where ``serve``'s CPU goes: py-spy sampling of a running serve, bucketed by job.

    python bench/serve_profile.py PROFILE.txt     # print the breakdown of a saved profile

``Sampler(pid, out)`` attaches ``py-spy record`` (``pip install py-spy``; it is looked
for on PATH and beside the Python running this) to a process and writes its samples in
py-spy's "raw" format (one line per distinct stack: ``frame;frame;... count``, root
first); ``breakdown(out)`` sorts every sample into one bucket by the frames on its
stack (first matching rule wins, so a token check inside a database read counts as
the token check) and ``print_breakdown`` prints each bucket's share. Idle threads are
left out (py-spy's own check misses a thread in epoll), so the shares are of the CPU the
process used.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

OTHER = "other"
HOPS = "worker-thread hops (thread pools, loop wake-ups)"
# innermost frames of a thread waiting, which py-spy may still report: not CPU, left out
IDLE = (
    "EpollSelector.select (",
    "Condition.wait (",
    "Queue.get (queue.py:171)",
    "_worker (concurrent/futures/thread.py",  # a pool thread waiting for work (C queue)
)

# (bucket, substrings of a frame "function (file:line)"). A stack holding a frame of an
# app rule anywhere counts there (first rule wins); then the access log's own line; any
# other stack counts under the plumbing rule of its innermost matching frame, since every
# stack has the server (and the access-log middleware) below it.
APP_RULES: Sequence[tuple[str, Sequence[str]]] = (
    ("token verify", ("itsdangerous", "mail/tokens.py", "person_fingerprint")),
    ("store commit (mostly fsync: disk wait, not CPU)", ("do_commit (",)),
    ("store write (unsubscribe + consent rows)", ("UnsubscribeLinks._leave (", "Leaving.leave (")),
    ("store read (subscriber + memberships)", ("._look_up (", "list_members (", "store/base.py")),
    ("page render (jinja)", ("web/pages.py", "jinja2", "render/theme.py")),
    ("form parsing", ("web/forms.py", "formparsers", "multipart")),
)
ACCESS_LOG = "access log"
PLUMBING_RULES: Sequence[tuple[str, Sequence[str]]] = (
    ("other logging", ("logging/__init__.py",)),
    (HOPS, ("anyio/", "threading.py", "concurrent/futures", "_write_to_self", "_read_from_self")),
    ("starlette routing/middleware/responses", ("starlette/",)),
    ("uvicorn + h11 (HTTP parsing, writing)", ("uvicorn/", "h11/", "httptools")),
    ("asyncio event loop + sockets", ("asyncio/", "selectors.py", "socket.py")),
)


def find_py_spy() -> str | None:
    """The py-spy executable: on PATH, or in the bin folder of this Python."""
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


class Sampler:
    """``py-spy record`` attached to ``pid`` until ``stop()``, samples into ``out``."""

    def __init__(self, pid: int, out: Path, *, rate: int = 250) -> None:
        py_spy = find_py_spy()
        if py_spy is None:
            raise SystemExit("--profile needs py-spy: pip install py-spy")
        self.out = out
        command = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
        self.proc = subprocess.Popen(
            [*command, "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> None:
        """Stop sampling (py-spy writes its file on SIGINT) and wait for it."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        if not self.out.exists():
            raise SystemExit(f"py-spy wrote no profile: {err.strip()[-500:]}")


def bucket_of(stack: str) -> str | None:
    """The bucket of one ``frame;frame;...`` stack; None for a thread waiting."""
    frames = stack.split(";")
    if any(frames[-1].startswith(idle) for idle in IDLE):
        return None
    for name, needles in APP_RULES:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    if _in_access_log(frames):
        return ACCESS_LOG
    for frame in reversed(frames):
        for name, needles in PLUMBING_RULES:
            if any(needle in frame for needle in needles):
                return name
    return OTHER


def _in_access_log(frames: Sequence[str]) -> bool:
    """Whether the stack is the access log writing its line (not the request it wraps:
    the middleware's frame sits below every request, so its presence alone says nothing)."""
    for index, frame in enumerate(frames):
        if "shown_path (" in frame:
            return True
        if "logging/__init__.py" in frame:
            return index > 0 and "web/accesslog.py" in frames[index - 1]
    return False


def breakdown(path: Path) -> dict[str, int]:
    """Bucket -> samples, from a py-spy raw profile."""
    counts: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            bucket = bucket_of(stack)
            if bucket is not None:
                counts[bucket] = counts.get(bucket, 0) + int(count)
    return counts


def print_breakdown(path: Path, cpu_ms_per_request: float | None = None) -> None:
    """Print each bucket's share of the samples (and of the CPU per request, if given)."""
    counts = breakdown(path)
    total = sum(counts.values()) or 1
    print(f"  profile ({total} busy samples, {path.name}):")
    for name, count in sorted(counts.items(), key=lambda item: -item[1]):
        share = count / total
        ms = f"  {share * cpu_ms_per_request:5.2f} ms" if cpu_ms_per_request else ""
        print(f"    {share * 100:5.1f} %{ms}  {name}")


if __name__ == "__main__":
    print_breakdown(Path(sys.argv[1]))
