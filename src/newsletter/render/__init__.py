"""Rendering: an Issue -> the email's HTML and text parts, once per issue.

``pipeline`` (render_issue, Rendered), ``theme`` (the template loader and the packaged
theme), ``mjml`` (compile + inline CSS), ``filters``, ``warnings``, ``stamp`` (the proof
that an issue folder's rendered parts are still fresh).
"""
