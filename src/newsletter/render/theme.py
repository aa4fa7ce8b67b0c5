"""The theme: the packaged templates, the workspace's overrides of them, and the Jinja
environment that looks in both.

A workspace customises the look by placing a file of the same name under its
``templates/`` folder: the loader looks there first, then in the packaged theme.
``theme_files`` and ``copy_theme_file`` list the packaged files and copy one over as a
starting point, so nobody has to dig through site-packages.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.errors import NewsletterError, RenderError
from newsletter.files import atomic_write
from newsletter.mail.slots import slot_grammar
from newsletter.render.filters import credit_line, long_date, url_host, wrap_text
from newsletter.workspace import Workspace

# jinja2 is imported inside the functions: a send that reuses a fresh render never needs it
if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThemeFile:
    """One file of the packaged theme: its name and whether the workspace overrides it."""

    name: str
    overridden: bool


def _packaged_root() -> Traversable:
    return resources.files("newsletter") / "templates"


def _walk(folder: Traversable, prefix: str = "") -> list[str]:
    names: list[str] = []
    for entry in folder.iterdir():
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            names.extend(_walk(entry, f"{prefix}{entry.name}/"))
        else:
            names.append(prefix + entry.name)
    return names


def theme_files(ws: Workspace) -> list[ThemeFile]:
    """Every packaged theme file (sorted by name), marked when ``templates/`` overrides it."""
    return [
        ThemeFile(name, (ws.templates_dir / name).is_file())
        for name in sorted(_walk(_packaged_root()))
    ]


def copy_theme_file(ws: Workspace, name: str, *, force: bool = False) -> Path:
    """Copy the packaged file ``name`` into the workspace's templates/ -> the new path.

    Raises NewsletterError for a name the theme does not have, or when the
    workspace already has that file and ``force`` is not set (an edited
    override is never clobbered by accident).
    """
    known = {item.name for item in theme_files(ws)}
    if name not in known:
        raise NewsletterError(
            f"the theme has no file {name!r}", hint="run `newsletter theme list` to see its files"
        )
    target = ws.templates_dir / name
    if target.exists() and not force:
        raise NewsletterError(
            f"{target} exists already", hint="edit it, or pass --force to start over from the theme"
        )
    source = _packaged_root().joinpath(*name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, source.read_bytes())
    log.info("copied theme file %s to %s", name, target)
    return target


# --- the template environment ----------------------------------------------------------


def _autoescape(template_name: str | None) -> bool:
    # "issue.mjml.j2" -> look at ".mjml": escape markup, never the text part
    name = (template_name or "").removesuffix(".j2")
    return name.endswith((".html", ".htm", ".mjml", ".xml"))


@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache:
    """The process's one in-memory cache of compiled templates (made on first use, since
    its base class is jinja2's).

    Jinja checks each entry against the checksum of the source it just loaded, so an
    edited or newly added override is recompiled while an unchanged theme is not.
    """
    import jinja2
    import jinja2.bccache

    class MemoryBytecodeCache(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self._store: dict[str, bytes] = {}

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            data = self._store.get(bucket.key)
            if data is not None:
                bucket.bytecode_from_string(data)

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            self._store[bucket.key] = bucket.bytecode_to_string()

    return MemoryBytecodeCache()


def template_environment(ws: Workspace) -> jinja2.Environment:
    """A Jinja environment over ``ws.templates_dir`` first, then the packaged theme.

    StrictUndefined (a misspelt variable fails the render), autoescape for ``*.html.j2``
    and ``*.mjml.j2``, none for ``*.txt.j2``. Globals: ``slot`` (the workspace's slot
    tokens, see ``slots``); filters: ``long_date``,
    ``wrap_text``, ``host``, ``credit_line``. Preview and serve render their pages with this too.
    """
    import jinja2

    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(ws.templates_dir),
            jinja2.PackageLoader("newsletter", "templates"),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )
    env.globals["slot"] = slot_grammar(ws).token
    env.filters["long_date"] = long_date
    env.filters["wrap_text"] = wrap_text
    env.filters["host"] = url_host
    env.filters["credit_line"] = credit_line
    return env


def display_path(ws: Workspace, filename: str | None, name: str) -> str:
    """How to name template ``name`` loaded from ``filename`` in an error message."""
    if filename is None:
        return name
    path = Path(filename)
    if path.is_relative_to(ws.root):
        return str(path.relative_to(ws.root))
    return f"{name} (packaged theme)"


def describe_template(ws: Workspace, env: jinja2.Environment, name: str) -> str:
    """Where template ``name`` comes from, for error messages."""
    import jinja2

    try:
        filename = env.get_template(name).filename
    except jinja2.TemplateError:
        filename = None
    return display_path(ws, filename, name)


def _error_line(exc: BaseException, template_file: str | None) -> int | None:
    """The template line an exception was raised at (Jinja maps frames to template lines)."""
    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    if template_file is None:
        return None
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == template_file:
            line = frame.lineno
    return line


def render_template(
    ws: Workspace, env: jinja2.Environment, name: str, context: Mapping[str, Any]
) -> str:
    """Template ``name`` rendered with ``context``; a failure -> RenderError with file, line."""
    import jinja2

    template_file: str | None = None
    try:
        template = env.get_template(name)
        template_file = template.filename
        return template.render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            f"template {exc.name} not found in templates/ or the packaged theme",
            hint="restore the file or remove the include",
        ) from None
    except RenderError as exc:
        where = describe_template(ws, env, name)
        line = _error_line(exc, template_file)
        raise RenderError(
            f"{where}, line {line}: {exc.message}" if line else f"{where}: {exc.message}",
            hint=exc.hint,
        ) from None
    except Exception as exc:  # any template bug: undefined name, bad filter, type error
        if isinstance(exc, jinja2.TemplateSyntaxError):
            where = display_path(ws, exc.filename, exc.name or name)
        else:
            where = describe_template(ws, env, name)
        line = _error_line(exc, template_file)
        message = getattr(exc, "message", None) or str(exc)
        location = f"{where}, line {line}" if line else where
        raise RenderError(
            f"{location}: {type(exc).__name__}: {message}",
            hint="fix the template and render again",
        ) from None
