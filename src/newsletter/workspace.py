"""A workspace: the folder holding newsletter.toml, templates/, subscribers/, seeds/, issues/.

``Workspace`` bundles the validated config, the environment and the paths every
verb needs, so no other module reads os.environ or guesses a folder.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.config import CONFIG_FILE, ConfigModel, Environment, load_config
from newsletter.errors import ConfigError

log = logging.getLogger(__name__)

DATABASE_FILE = "newsletter.db"
GENERATED_KEY_FILE = ".secret_key"


@dataclass(frozen=True)
class Workspace:
    """A loaded workspace: ``root`` folder, its ``config`` and the ``env`` it runs in."""

    root: Path
    config: ConfigModel
    env: Environment = field(default_factory=Environment.from_environ)

    @property
    def templates_dir(self) -> Path:
        """templates/: files here override the packaged default theme."""
        return self.root / "templates"

    @property
    def issues_dir(self) -> Path:
        """Where composed issue folders go."""
        return self.root / self.config.compose.issues_dir

    @property
    def subscribers_dir(self) -> Path:
        """subscribers/: import files and the embedded SQLite database."""
        return self.root / "subscribers"

    @property
    def database_url(self) -> str:
        """NEWSLETTER_DATABASE_URL, else a SQLite file under subscribers/."""
        if self.env.database_url:
            return self.env.database_url
        return f"sqlite:///{self.subscribers_dir / DATABASE_FILE}"

    @property
    def base_url(self) -> str:
        """Public URL of ``newsletter serve`` (env override applied), no trailing slash."""
        return self.config.publication.base_url

    def secret_keys(self) -> tuple[str, ...]:
        """Signing keys, newest first: NEWSLETTER_SECRET_KEY, else one generated per workspace.

        The generated key lives in subscribers/.secret_key (ignored by git) so the
        embedded default works with no setup and links stay valid across runs.
        """
        if self.env.secret_keys:
            return self.env.secret_keys
        key_file = self.subscribers_dir / GENERATED_KEY_FILE
        if key_file.exists():
            return (key_file.read_text(encoding="ascii").strip(),)
        self.subscribers_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        # O_EXCL: two processes starting together must not end with different keys
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return (key_file.read_text(encoding="ascii").strip(),)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        # news, not a problem: the CLI shows records marked as notices on a plain run
        log.info(
            "generated the key that signs links in %s (ignored by git; "
            "NEWSLETTER_SECRET_KEY replaces it)",
            key_file,
            extra={"notice": True},
        )
        return (key,)


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding newsletter.toml, or raise ConfigError."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_FILE} in {start} or any folder above it",
        hint="run inside a workspace or pass --workspace DIR",
    )


def load_workspace(path: Path | None = None, environ: dict[str, str] | None = None) -> Workspace:
    """Find the workspace at or above ``path`` (default: the current folder) and load it."""
    root = find_root(path or Path.cwd())
    env = Environment.from_environ(environ)
    return Workspace(root=root, config=load_config(root / CONFIG_FILE, environ), env=env)
