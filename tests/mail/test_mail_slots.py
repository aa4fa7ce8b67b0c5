"""mail/slots.py: the one slot grammar: tokens only the signing key can write, filled by it."""

from __future__ import annotations

import pytest

from newsletter.errors import RenderError
from newsletter.mail.slots import SlotGrammar, defuse, slot_marker

SLOTS = SlotGrammar.for_keys(("key-new", "key-old"))
OLD_ONLY = SlotGrammar.for_keys(("key-old",))
OTHER = SlotGrammar.for_keys(("someone-elses-key",))


def test_token_writes_marked_tokens_and_rejects_unknown_names() -> None:
    marker = slot_marker("key-new")
    assert len(marker) == 16 and marker != slot_marker("key-old")
    assert SLOTS.token("unsubscribe_url") == f"%%{marker}.unsubscribe_url%%"
    assert SLOTS.token("attr.city") == f"%%{marker}.attr.city%%"
    for bad in ("unsubscribe", "Email", "attr.", "attr.City", "first name", "", "a.b"):
        with pytest.raises(RenderError):
            SLOTS.token(bad)


def test_only_tokens_of_the_keys_are_slots() -> None:
    text = (
        f"{SLOTS.token('email')} {OLD_ONLY.token('email')} {OTHER.token('email')} "
        "%%email%% %%unsubscribe_url%%"
    )
    assert SLOTS.fill(text, {"email": "a@example.org"}, html=False) == (
        f"a@example.org a@example.org {OTHER.token('email')} %%email%% %%unsubscribe_url%%"
    )
    assert SLOTS.names(text) == {"email"}
    assert OTHER.names(SLOTS.token("email")) == set()


def test_fill_escapes_for_html_only() -> None:
    text = SLOTS.mark(
        'Hi %%greeting_name%%, <a href="%%unsubscribe_url%%">x</a> %%attr.city%% %%attr.none%%'
    )
    values = {
        "greeting_name": 'Ann <"Boss"> & Co',
        "unsubscribe_url": "https://b.example.org/u/abc?x=1&y=2",
        "attr.city": "Köln",
    }
    assert SLOTS.fill(text, values, html=True) == (
        "Hi Ann &lt;&quot;Boss&quot;&gt; &amp; Co, "
        '<a href="https://b.example.org/u/abc?x=1&amp;y=2">x</a> Köln '
    )
    assert SLOTS.fill(text, values, html=False) == (
        'Hi Ann <"Boss"> & Co, <a href="https://b.example.org/u/abc?x=1&y=2">x</a> Köln '
    )


def test_fill_refuses_a_missing_known_value() -> None:
    with pytest.raises(RenderError, match="unsubscribe_url"):
        SLOTS.fill(SLOTS.token("unsubscribe_url"), {"email": "a@example.org"}, html=False)


def test_mark_turns_editor_slots_into_tokens_and_leaves_other_words() -> None:
    marked = SLOTS.mark("%%first_name%%: save 50%%off%% now, %%Bad%%, %% not %%, %%attr.plan%%")
    assert marked == (
        f"{SLOTS.token('first_name')}: save 50%%off%% now, %%Bad%%, %% not %%, "
        f"{SLOTS.token('attr.plan')}"
    )
    assert SLOTS.plain(marked) == (
        "%%first_name%%: save 50%%off%% now, %%Bad%%, %% not %%, %%attr.plan%%"
    )


def test_defused_text_is_never_marked() -> None:
    defused = defuse("Prize for %%name%% at %%email%%")
    assert SLOTS.mark(defused) == defused
    assert defused.replace("\u2060", "") == "Prize for %%name%% at %%email%%"
