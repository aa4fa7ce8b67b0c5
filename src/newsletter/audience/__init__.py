"""The audience: subscriber files in and out, the single-address verbs, and the mail that
comes back (bounces, complaints, unsubscribe requests)."""
