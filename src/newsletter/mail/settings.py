"""MessageSettings: the sender identity and addresses a message needs, from the workspace."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.errors import ConfigError
from newsletter.mail.headers import header_unsafe
from newsletter.workspace import Workspace


@dataclass(frozen=True)
class MessageSettings:
    """The sender identity and addresses a message needs, independent of any issue."""

    publication: str
    from_name: str
    from_address: str
    base_url: str
    secret_keys: tuple[str, ...]
    reply_to: str = ""
    unsubscribe_mailbox: str = ""
    bounce_address: str = ""
    greeting_fallback: str = "reader"

    @property
    def domain(self) -> str:
        """The sender's domain (after the @ of the From address), lower case."""
        return self.from_address.rpartition("@")[2].lower()

    @property
    def envelope_base(self) -> str:
        """The bounce mailbox VERP addresses derive from: configured, else bounces@domain."""
        return self.bounce_address or f"bounces@{self.domain}"

    @classmethod
    def from_workspace(cls, workspace: Workspace) -> MessageSettings:
        """Read the [publication] and [sender] settings and the signing keys."""
        publication, sender = workspace.config.publication, workspace.config.sender
        return cls(
            publication=publication.name,
            from_name=sender.name,
            from_address=sender.address,
            base_url=workspace.base_url,
            secret_keys=workspace.secret_keys(),
            reply_to=sender.reply_to,
            unsubscribe_mailbox=sender.unsubscribe_mailbox,
            bounce_address=sender.bounce_address,
        )

    def check_for_headers(self) -> None:
        """ConfigError for addresses or a base URL that cannot go into 7-bit headers."""
        for field_name, value in (
            ("publication.base_url", self.base_url),
            ("sender.address", self.from_address),
            ("sender.reply_to", self.reply_to),
            ("sender.unsubscribe_mailbox", self.unsubscribe_mailbox),
            ("sender.bounce_address", self.bounce_address),
        ):
            if header_unsafe(value, address=field_name != "publication.base_url"):
                raise ConfigError(
                    f"newsletter.toml {field_name}: {value!r} cannot be used in a mail header",
                    hint="use a plain ASCII address (punycode for international domains)",
                )
