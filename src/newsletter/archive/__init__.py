"""The public archive: the issues sent to the public lists, as web pages and an Atom feed.

``query`` finds what is public (finished or waiting campaigns to ``[archive] lists``),
``webpage`` turns a campaign's stored parts into its web version (nothing personal, with
title, Open Graph and canonical tags), ``site`` builds every page of the archive once
(index pages, one page per issue, the feed), which ``web.archive`` serves from memory and
``build`` writes as static files.
"""
