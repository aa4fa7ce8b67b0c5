"""mail/mime.py: quoted-printable parts that keep slot tokens alone between soft breaks."""

from __future__ import annotations

import quopri

from mail_samples import (
    SLOTS,
)

from newsletter.mail.mime import qp_encode_with_slots, qp_value


def test_qp_value_chunks_long_values_under_the_line_limit() -> None:
    chunk = qp_value("Ü" * 100 + "=" * 30)
    lines = chunk.split(b"=\r\n")
    assert all(len(line) <= 75 for line in lines)
    assert not chunk.endswith(b"=\r\n")
    assert qp_value("plain-ascii.value") == b"plain-ascii.value"


def test_qp_never_starts_a_line_with_a_dot() -> None:
    # SMTP doubles a leading "." in transit; encoding it instead (=2E) means the
    # transport never has to rewrite a message (and DKIM never sees the difference)
    encoded = qp_encode_with_slots(".mj-column { width: 100% }\n" + "x" * 75 + ".tail\n", SLOTS)
    assert not any(line.startswith(".") for line in encoded.split("\r\n"))
    assert quopri.decodestring(encoded.encode()) == (
        b".mj-column { width: 100% }\r\n" + b"x" * 75 + b".tail\r\n"
    )
    for value in (".", ".lead", "a" * 75 + ".b", "Ü" * 30 + "." * 40):
        chunk = qp_value(value)
        assert not any(line.startswith(b".") for line in chunk.split(b"=\r\n"))
        assert quopri.decodestring(chunk).decode("utf-8") == value


def test_qp_template_encodes_trailing_space_and_percent() -> None:
    text = SLOTS.mark("end with space \n100%\nslot %%email%% at end %%name%%\n")
    encoded = qp_encode_with_slots(text + "and %%email%% as text\n", SLOTS)
    assert encoded.split("\r\n")[0] == "end with space=20"
    assert "100=25" in encoded
    assert f"=\r\n{SLOTS.token('email')}=\r\n" in encoded
    assert "and =25=25email=25=25 as text" in encoded
