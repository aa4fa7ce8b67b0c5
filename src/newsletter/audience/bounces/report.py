"""The report of one ``newsletter bounces`` run: ``BounceRunReport`` and its summary line."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.audience.bounces.classify import Kind
from newsletter.audience.bounces.process import MessageOutcome, Result
from newsletter.audience.bounces.unsubscribe import RequestOutcome, RequestResult


@dataclass
class BounceRunReport:
    """What ``process_paths`` did: counts per kind and the messages it could not handle.

    ``messages``: every message read; ``hard``/``soft``/``complaints``: reports recorded
    now; ``ignored``: the rest that was handled, split into ``nothing_to_do`` (not a
    report, or one asking for nothing), ``duplicates`` (already processed), ``forged``,
    ``unsigned`` and ``unmatched`` (about nobody we know); ``suppressed``: subscribers
    suppressed by this run. ``requests``: unsubscribe requests read (the mailto: of
    List-Unsubscribe), of which ``unsubscribed_by_link`` left a list through a valid
    token and ``unsubscribed_senders`` (address, where) left every list on the word of
    their From address; the rest are counted in ``ignored`` (``forged`` when a token did
    not verify and the sender is nobody we have). ``unreadable``: (what, why) for each
    file or mailbox entry
    that could not be read; ``unclassified``: (what, why) for each message read that
    failed in an unexpected way (counted in ``messages``, in no other count).
    """

    messages: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    ignored: int = 0
    suppressed: int = 0
    nothing_to_do: int = 0
    duplicates: int = 0
    forged: int = 0
    unsigned: int = 0
    unmatched: int = 0
    requests: int = 0
    unsubscribed_by_link: int = 0
    unsubscribed_senders: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    unclassified: list[tuple[str, str]] = field(default_factory=list)

    @property
    def incomplete(self) -> bool:
        """True when some input could not be read or classified (worth a non-zero exit)."""
        return bool(self.unreadable or self.unclassified)

    def count(self, outcome: MessageOutcome) -> None:
        """Add one processed message."""
        self.messages += 1
        if outcome.result is Result.APPLIED:
            kind = outcome.classification.kind
            if kind is Kind.HARD:
                self.hard += 1
            elif kind is Kind.SOFT:
                self.soft += 1
            else:
                self.complaints += 1
        else:
            self.ignored += 1
            if outcome.result is Result.IGNORED:
                self.nothing_to_do += 1
            elif outcome.result is Result.DUPLICATE:
                self.duplicates += 1
            elif outcome.result is Result.FORGED:
                self.forged += 1
            elif outcome.result is Result.UNSIGNED:
                self.unsigned += 1
            elif outcome.result is Result.UNMATCHED:
                self.unmatched += 1
        self.suppressed += outcome.suppressed

    def count_request(self, outcome: RequestOutcome, origin: str) -> None:
        """Add one unsubscribe request mail, read from ``origin``."""
        self.messages += 1
        self.requests += 1
        if outcome.result is RequestResult.BY_TOKEN:
            self.unsubscribed_by_link += 1
            return
        if outcome.result is RequestResult.BY_SENDER:
            self.unsubscribed_senders.append((outcome.address, origin))
            return
        self.ignored += 1
        if outcome.result is RequestResult.DUPLICATE:
            self.duplicates += 1
        elif outcome.result is RequestResult.UNCHANGED:
            self.nothing_to_do += 1
        elif outcome.forged:
            self.forged += 1
        else:
            self.unmatched += 1

    def count_unclassified(self, origin: str, reason: str) -> None:
        """Add one message that was read but failed while being classified or applied."""
        self.messages += 1
        self.unclassified.append((origin, reason))

    def summary(self) -> str:
        """One line: the counts per kind, why messages were ignored, what failed.

        ``8 messages: hard 2, soft 2, complaints 1, ignored 3 (already processed 2,
        forged 1), suppressed 3``; ``unsubscribed N (by link N, by sender address N)``
        before ``ignored`` when unsubscribe requests were read; ``could not classify N``
        before ``suppressed`` and ``; could not read N`` at the end when there are any.
        """
        noun = "message" if self.messages == 1 else "messages"
        reasons = [
            (label, number)
            for label, number in (
                ("nothing to do", self.nothing_to_do),
                ("already processed", self.duplicates),
                ("forged", self.forged),
                ("unsigned", self.unsigned),
                ("no known subscriber", self.unmatched),
            )
            if number
        ]
        ignored = f"ignored {self.ignored}"
        if reasons:
            ignored += " (" + ", ".join(f"{label} {number}" for label, number in reasons) + ")"
        counts = [f"hard {self.hard}", f"soft {self.soft}", f"complaints {self.complaints}"]
        if self.requests:
            counts.append(self._unsubscribed())
        counts.append(ignored)
        if self.unclassified:
            counts.append(f"could not classify {len(self.unclassified)}")
        counts.append(f"suppressed {self.suppressed}")
        line = f"{self.messages} {noun}: " + ", ".join(counts)
        if self.unreadable:
            line += f"; could not read {len(self.unreadable)}"
        return line

    def _unsubscribed(self) -> str:
        """``unsubscribed 3 (by link 2, by sender address 1)``: requests that acted."""
        by_sender = len(self.unsubscribed_senders)
        ways = [
            f"{label} {number}"
            for label, number in (
                ("by link", self.unsubscribed_by_link),
                ("by sender address", by_sender),
            )
            if number
        ]
        total = f"unsubscribed {self.unsubscribed_by_link + by_sender}"
        return total + (" (" + ", ".join(ways) + ")" if ways else "")
