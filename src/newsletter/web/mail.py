"""The two messages ``serve`` sends itself: the double opt-in confirmation and the welcome.

Their bodies come from ``templates/messages/{confirm,welcome}.{html,txt}.j2`` (the text
template sets ``subject``), rendered per message since each carries its own confirm
link; the MIME framing, List-Unsubscribe, VERP and DKIM are ``newsletter.mail``'s,
the SMTP session ``newsletter.smtp``'s. Without ``NEWSLETTER_SMTP_URL`` the
messages go to the embedded local server, which stores them in ``outbox/`` like
``newsletter send`` does.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import jinja2

from newsletter.errors import DeliveryError, RenderError
from newsletter.mail.dkim import load_dkim_signer
from newsletter.mail.settings import MessageSettings
from newsletter.mail.template import build_template
from newsletter.render.theme import render_template, template_environment
from newsletter.smtp.connection import SmtpConnection
from newsletter.smtp.embedded import EmbeddedServer, outbox_dir
from newsletter.smtp.outcome import Outcome, Status
from newsletter.smtp.settings import SmtpSettings, smtp_settings
from newsletter.store.records import Recipient
from newsletter.workspace import Workspace

log = logging.getLogger(__name__)

CONFIRM = "confirm"
WELCOME = "welcome"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready for SMTP: envelope sender, recipient and the wire bytes."""

    mail_from: str
    to: str
    data: bytes
    subject: str


class MessageFactory:
    """Builds confirmation and welcome messages for one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.env = template_environment(ws)
        self.settings = MessageSettings.from_workspace(ws)
        self.dkim = load_dkim_signer(ws)

    def _subject_and_text(self, kind: str, context: dict[str, Any]) -> tuple[str, str]:
        name = f"messages/{kind}.txt.j2"
        text = render_template(self.ws, self.env, name, context)
        try:
            module = self.env.get_template(name).make_module(context)
            subject = str(getattr(module, "subject", "")).strip()
        except jinja2.TemplateError as exc:  # render_template above already read it fine
            raise RenderError(f"{name}: {exc}") from None
        if not subject:
            raise RenderError(
                f"{name} sets no subject",
                hint='add {% set subject = "..." %} at the top of the template',
            )
        return subject, text

    def build(
        self,
        kind: str,
        *,
        subscriber_id: int,
        email: str,
        name: str,
        list_id: int,
        list_name: str,
        extra: dict[str, Any] | None = None,
    ) -> OutgoingMessage:
        """Message ``kind`` ("confirm" or "welcome") for one person -> OutgoingMessage.

        ``extra`` adds template values (``confirm_url``, ``expiry_hours`` for confirm).
        Raises RenderError for a broken template.
        """
        context: dict[str, Any] = {
            "publication": self.ws.config.publication,
            "sender": self.ws.config.sender,
            "list_name": list_name,
            "base_url": self.ws.base_url,
            **(extra or {}),
        }
        subject, text = self._subject_and_text(kind, context)
        html = render_template(self.ws, self.env, f"messages/{kind}.html.j2", context)
        template = build_template(
            self.settings,
            subject=subject,
            html_body=html,
            text_body=text,
            campaign=kind,
            list_id=list_id,
            list_name=list_name,
            dkim_signer=self.dkim,
        )
        recipient = Recipient(id=subscriber_id, email=email, name=name)
        return OutgoingMessage(
            mail_from=template.envelope_sender(recipient),
            to=email,
            data=template.personalise(recipient),
            subject=subject,
        )


class Postman:
    """Hands single messages to the configured SMTP server, or the embedded one.

    Thread-safe; a connection per message (these are a trickle, not a campaign).
    ``close()`` stops the embedded server if one was started.
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._settings: SmtpSettings | None = smtp_settings(ws)
        self._embedded: EmbeddedServer | None = None
        self._lock = threading.Lock()

    def _smtp(self) -> SmtpSettings:
        if self._settings is not None:
            return self._settings
        with self._lock:
            if self._embedded is None:
                server = EmbeddedServer(outbox_dir(self.ws))
                server.start()
                self._embedded = server
                log.info("no NEWSLETTER_SMTP_URL: messages go to %s", outbox_dir(self.ws))
            return self._embedded.settings()

    def send(self, message: OutgoingMessage) -> Outcome:
        """Deliver ``message`` -> the server's outcome for its one recipient.

        Raises DeliveryError when the server cannot be reached or refuses the message.
        """
        with SmtpConnection(self._smtp()) as connection:
            outcome = connection.send(message.mail_from, [message.to], message.data)[0]
        if outcome.status is not Status.ACCEPTED:
            raise DeliveryError(
                f"the mail server did not take the {message.subject!r} message: {outcome}"
            )
        return outcome

    def close(self) -> None:
        """Stop the embedded server, if this postman started one."""
        with self._lock:
            if self._embedded is not None:
                self._embedded.stop()
                self._embedded = None
