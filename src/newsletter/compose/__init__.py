"""Composing an issue: sources -> articles (``ingest``) -> teasers (``summarize``) ->
issue.json (``issue_file``) in an issue folder (``folder``); ``build`` runs the whole
compose and ``extract_source``.
"""
