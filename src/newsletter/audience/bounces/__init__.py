"""Mail that comes back to us: bounces (DSN), complaints (ARF) and unsubscribe requests.

``run.process_paths`` reads the mail (``sources``), ``classify`` says what each message
is, ``references`` whom it is about, ``process`` applies it to the store, a message that
is not a report goes to ``unsubscribe``, and ``report`` counts what the run did.
"""
