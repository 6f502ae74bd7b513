"""Secrets never leave the process: storage URLs are written, logged and reported with their password as ***."""

from __future__ import annotations

import re


def redact(url: str | None) -> str | None:
    """A storage URL with its password replaced by ***, for logs, results and reports."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url) if url else url



def _redact_text(text: str, url: str) -> str:
    """`text` with every URL in it redacted, and the password of `url` (if any) replaced wherever it appears."""
    text = re.sub(r"[a-z][a-z0-9+.-]*://\S+", lambda m: redact(m.group(0)), text)
    password = re.match(r"[^:]+://[^:/@]+:([^@]*)@", url)
    if password and password.group(1):
        text = text.replace(password.group(1), "***")
    return text
