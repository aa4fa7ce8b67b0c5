"""Scheduled sends: ``send ISSUE --at WHEN``, ``schedule list|cancel``, due runs.

``when.parse_when`` reads the time; ``scheduled.schedule_send`` records a send for later;
``due.run_due`` (one tick: ``newsletter run-due`` from cron, and every few seconds inside
``newsletter serve``) starts the sends that are due. The rules:

- A send is started by the one process whose conditional UPDATE claims it
  (``store.schedules.claim_schedule``), so two ``serve`` processes on one database never
  both start it.
- A send whose time passed while nothing was running starts at the next tick if it is
  at most ``serve.missed_window_hours`` late; later than that it is marked ``missed``,
  logged and shown by ``schedule list``, and never sent.
- A running send whose process died (no heartbeat for ``stale_after``) is taken over
  and resumed by the ledger, which never sends a second copy to anyone it already
  delivered to; past the window it is marked missed instead.

The send itself is a ``due.SendRunner``: by default ``newsletter.deliver``'s entry point.
Tests pass their own runner, or the real one.
"""
