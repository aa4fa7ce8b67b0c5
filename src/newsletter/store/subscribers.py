"""``Store``: the subscriber API the rest of the project calls.

Every method that changes something runs in one write transaction and has committed
before it returns. Addresses are normalised on the way in (``addresses.normalize_address``);
an unusable one raises ``AddressError``. The methods live in one module per concern:

``base``         engine, ``read()`` / ``write()``, lists, ``get`` / ``get_by_email``
``subscribing``  ``add``, ``import_batch``, ``add_pending``, ``confirm``, ``expire_pending``
``leaving``      ``unsubscribe``, ``remove``, ``mark_bounced``, ``mark_complained``
``listing``      who may be mailed (``iter_recipients``, ``sendable_ids``), ``count``,
                 ``iter_subscribers``, ``iter_summaries``
``exports``      ``iter_export_rows`` (subscribers as text, for ``audience.exporting``)
``privacy``      ``describe`` (the data-subject export), ``erase``
"""

from __future__ import annotations

from newsletter.store.exports import Exporting
from newsletter.store.leaving import Leaving
from newsletter.store.privacy import Privacy
from newsletter.store.subscribing import Subscribing


class Store(Subscribing, Leaving, Exporting, Privacy):
    """The subscriber database behind one SQLAlchemy engine (see ``open_store``)."""
