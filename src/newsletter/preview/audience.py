"""Who the preview is addressed to, and how many people the issue would reach.

``open_audience(workspace, as_address)`` -> ``Audience``: the sample recipient whose
values fill the slots (the subscriber ``as_address``, else the first sendable
subscriber on the default list, else a built-in example person) and
``count_active(list_name)`` -> ``RecipientCount`` for the checks panel.

A workspace without a subscriber database is normal while composing: the preview
then shows the example person and a count of 0 with a hint, and it does not create
the database just to look at it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from newsletter.errors import StoreError
from newsletter.store import Store, open_store_for
from newsletter.workspace import DATABASE_FILE, Workspace

log = logging.getLogger(__name__)

# Used in the greeting when a subscriber has no name (docs/internals.md "Recipient slots").
GREETING_FALLBACK = "reader"
IMPORT_HINT = "import some with `newsletter subscribers import FILE`"


@dataclass(frozen=True)
class SampleRecipient:
    """The person the preview pretends to send to; ``from_store`` is False for the example."""

    email: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    from_store: bool = False

    def slot_values(self, *, unsubscribe_url: str) -> dict[str, str]:
        """Every recipient slot's value for this person (docs/internals.md "Recipient slots")."""
        name = " ".join(self.name.split())
        values = {
            "email": self.email,
            "name": name,
            "first_name": name.split(" ", 1)[0] if name else "",
            "greeting_name": name or GREETING_FALLBACK,
            "unsubscribe_url": unsubscribe_url,
        }
        values.update({f"attr.{key}": str(value) for key, value in self.attributes.items()})
        return values


EXAMPLE_RECIPIENT = SampleRecipient(email="alex@example.org", name="Alex Example")


@dataclass(frozen=True)
class RecipientCount:
    """Active recipients on ``list_name``: ``count`` (None if the database failed), a ``hint``."""

    list_name: str
    count: int | None
    hint: str = ""


class Audience:
    """The sample recipient, and the recipient count of a list from the workspace's store.

    The store is opened only once its database exists (or a database URL is set), and
    re-tried on each count, so subscribers imported while previewing show up.
    """

    def __init__(self, workspace: Workspace, sample: SampleRecipient, store: Store | None) -> None:
        self.workspace = workspace
        self.sample = sample
        self._store = store

    def store(self) -> Store | None:
        """The workspace's store, opened now if its database has appeared; None if none yet."""
        if self._store is None and database_exists(self.workspace):
            self._store = open_store_for(self.workspace)
        return self._store

    def count_active(self, list_name: str) -> RecipientCount:
        """How many active subscribers ``list_name`` has, with a hint when that is 0 or unknown."""
        try:
            store = self.store()
            if store is None:
                return RecipientCount(list_name, 0, f"no subscriber database yet: {IMPORT_HINT}")
            if store.list_id(list_name) is None:
                return RecipientCount(
                    list_name, 0, f"no list named {list_name!r} yet: {IMPORT_HINT}"
                )
            count = store.count(list_name=list_name, status="active")
        except StoreError as exc:
            log.warning("cannot count recipients: %s", exc)
            return RecipientCount(list_name, None, str(exc))
        return RecipientCount(
            list_name, count, "" if count else f"nobody active on it: {IMPORT_HINT}"
        )

    def close(self) -> None:
        """Release the database connection pool, if one was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


def database_exists(workspace: Workspace) -> bool:
    """True when a database URL is configured or the embedded SQLite file exists."""
    return bool(workspace.env.database_url) or (workspace.subscribers_dir / DATABASE_FILE).is_file()


def _subscriber_sample(store: Store, as_address: str) -> SampleRecipient:
    subscriber = store.get_by_email(as_address)
    if subscriber is None:
        raise StoreError(
            f"--as {as_address}: no subscriber with this address",
            hint="check the spelling, or leave out --as to preview as a sample subscriber",
        )
    return SampleRecipient(
        email=subscriber.email,
        name=subscriber.name,
        attributes=dict(subscriber.attributes),
        from_store=True,
    )


def _first_recipient(store: Store, list_name: str) -> SampleRecipient | None:
    try:
        first = next(iter(store.iter_recipients(list_name, batch_size=1)), None)
    except StoreError:
        return None  # the default list does not exist yet
    if first is None:
        return None
    return SampleRecipient(
        email=first.email, name=first.name, attributes=dict(first.attributes), from_store=True
    )


def open_audience(workspace: Workspace, as_address: str | None = None) -> Audience:
    """The audience of ``workspace``; ``as_address`` picks the sample subscriber by email.

    Without ``as_address``: the first sendable subscriber on the default list
    (config ``send.list``), else the example person. Raises StoreError when
    ``as_address`` is given but is no subscriber, or the database cannot be opened.
    """
    if as_address is not None and not database_exists(workspace):
        raise StoreError(
            f"--as {as_address}: there is no subscriber database yet",
            hint="import subscribers first, or leave out --as",
        )
    store = open_store_for(workspace) if database_exists(workspace) else None
    try:
        if store is None:
            sample = EXAMPLE_RECIPIENT
        elif as_address is not None:
            sample = _subscriber_sample(store, as_address)
        else:
            sample = _first_recipient(store, workspace.config.send.list) or EXAMPLE_RECIPIENT
    except BaseException:
        if store is not None:
            store.close()
        raise
    return Audience(workspace, sample, store)
