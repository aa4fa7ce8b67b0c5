"""The SMTP side: the client that sends, and the embedded server that stands in for one.

settings.py   NEWSLETTER_SMTP_URL + [send] -> SmtpSettings (TLS policy, the URL forms)
outcome.py    Status and Outcome: what became of one recipient
envelope.py   addresses checked, DATA dot-stuffed, the MAIL/RCPT/DATA commands
exchange.py   Exchange: one transaction as a non-blocking state machine; ReplyReader
session.py    opening a session: connect, EHLO, STARTTLS/TLS, AUTH (smtplib)
connection.py SmtpConnection: one reused connection, send / begin / finish
ratelimit.py  RateLimiter: messages per second without blocking
embedded.py   EmbeddedServer: the local aiosmtpd server storing .eml files in outbox/
"""
