"""The mail side: a rendered issue and a recipient become the exact bytes handed to SMTP.

slots.py      the one recipient-slot grammar the renderer writes and the sender fills
tokens.py     signed unsubscribe / confirm tokens (itsdangerous, a salt per purpose)
settings.py   MessageSettings: sender identity and addresses, checked for 7-bit headers
headers.py    header values: display names, subjects, mailboxes (RFC 2047, folding)
mime.py       quoted-printable bodies that keep slot tokens alone between soft breaks
verp.py       per-recipient signed envelope senders, and reading them back from bounces
dkim.py       DkimSigner and the workspace's signer (NEWSLETTER_DKIM_KEY)
template.py   build_template once per send -> MessageTemplate.personalise per recipient
"""
