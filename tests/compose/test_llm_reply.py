"""compose/llm.py without a server: the reply cleaned and fitted to the word budget, the
endpoint's URL, and the [summarize] settings checked like every other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newsletter.compose.llm import chat_url, clean_reply, shown_url
from newsletter.config import ConfigModel, parse_config
from newsletter.errors import ConfigError


@pytest.mark.parametrize(
    ("reply", "teaser"),
    [
        ("The ferry runs on the tides.", "The ferry runs on the tides."),
        # reasoning models think aloud first; a preamble line and a label are not the teaser
        ("<think>Maybe 99 words?</think>\n\nThe ferry runs.", "The ferry runs."),
        ("Here is a 50-word teaser for you:\n\nThe ferry runs.", "The ferry runs."),
        ("Teaser: The ferry runs.", "The ferry runs."),
        # markdown and wrapping quotes go, the words stay
        ('"**The ferry** runs on [the tides](https://x.example).”', "The ferry runs on the tides."),
        ("“The ferry runs.”", "The ferry runs."),
        ("## Tidal ferry\n\n- The _ferry_ runs on `tides`.", "The ferry runs on tides."),
        ('"Yes," she said, "it runs."', '"Yes," she said, "it runs."'),
        # control characters and whole terminal escapes are removed
        ("The \x1b[2Jferry\x1b]0;owned\x07 runs\u202e.\r\n", "The ferry runs."),
        ("  The   ferry\n\nruns.  ", "The ferry runs."),
        ("", ""),
        ("<think>only thinking, never an answer", ""),
    ],
)
def test_the_reply_is_cleaned(reply: str, teaser: str) -> None:
    assert clean_reply(reply, max_words=60) == teaser


def test_a_long_reply_is_trimmed_at_a_sentence_end() -> None:
    sentence = "The council met again on Tuesday to debate the budget."  # 10 words
    reply = " ".join([sentence] * 8)
    assert clean_reply(reply, max_words=35) == " ".join([sentence] * 3)


def test_a_long_single_sentence_is_cut_at_a_word_with_an_ellipsis() -> None:
    reply = "The ferry " + "and the island " * 30 + "runs."
    teaser = clean_reply(reply, max_words=20)
    assert teaser.endswith("…") and len(teaser.split()) <= 20


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/chat/completions"),
        ("http://127.0.0.1:11434/v1/", "http://127.0.0.1:11434/v1/chat/completions"),
        (
            "https://llm.example.org/v1/chat/completions",
            "https://llm.example.org/v1/chat/completions",
        ),
    ],
)
def test_the_chat_completions_url(endpoint: str, url: str) -> None:
    assert chat_url(endpoint) == url


def test_a_warning_names_the_endpoint_without_its_credentials() -> None:
    assert shown_url("https://me:pw@llm.example.org:8443/v1/chat/completions?key=s") == (
        "https://llm.example.org:8443/v1/chat/completions"
    )


def _config(summarize: dict[str, Any]) -> ConfigModel:
    data = {
        "publication": {"name": "N", "base_url": "https://n.example.org"},
        "sender": {"name": "N", "address": "n@example.org"},
        "summarize": summarize,
    }
    return parse_config(data, Path("newsletter.toml"), environ={})


def test_the_extractive_engine_is_the_default() -> None:
    assert _config({}).summarize.engine == "extractive"


@pytest.mark.parametrize(
    ("summarize", "problem"),
    [
        ({"engine": "llm"}, 'summarize: engine = "llm" needs endpoint and model'),
        ({"engine": "llm", "endpoint": "http://h/v1"}, "needs endpoint and model"),
        ({"engine": "gpt"}, "summarize.engine: Input should be 'extractive' or 'llm'"),
        ({"endpoint": "ftp://h/v1"}, "summarize.endpoint: 'ftp://h/v1' is not a URL"),
        ({"timeout_seconds": 0}, "summarize.timeout_seconds: Input should be greater than 0"),
        ({"api_key": "sk-1"}, "summarize.api_key: unknown setting"),
    ],
)
def test_bad_summarize_settings_are_named(summarize: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"newsletter\.toml: ") as raised:
        _config(summarize)
    assert problem in str(raised.value)
