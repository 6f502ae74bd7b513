"""Secrets never leave the process: what the suite writes, logs or reports carries `***` instead of a password.

Redaction is structural, not a pattern for one URL shape:
- a URL (`scheme://...`) is split at its *last* `@` before the host, so a user name that is empty
  (`postgresql://:pw@host/db`) and a password that holds `@`, `:`, `/`, `(` or `?` are all cut out whole; the
  values of secret-named query parameters (`?password=`, `&sslpassword=`, `?api_token=`, ...) go too;
- a config value or an override (`key=value`) whose key names a secret (`password`, `sslpassword`, `secret`,
  `api_token`, ...) loses its value, whatever it is (an interpolated `${oc.env:...}` included, once resolved);
- a nested config (a manifest, a result) is walked key by key (`redact_data`).

Every file the suite writes goes through `ablations.store.files.write_text_atomic` / `write_json_atomic`,
which apply these, so a secret interpolated from the environment into a YAML file never reaches a manifest, a
table or a report; error messages that echo overrides pass them through `redact_text` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

MASK = "***"

#: keys whose values are secrets, in configs, overrides, query strings and `key=value` text
_SECRET_KEY = re.compile(
    r"(?i)^(?:.*[._-])?(?:[a-z]*password|[a-z]*passwd|passphrase|pwd|[a-z]*secret|secret[_-]?key|credentials?|"
    r"(?:auth|access|api|bearer|refresh|session|private|client|hf|github|gh)[_-]?(?:token|key|secret)|apikey|"
    r"token[_-]?secret)$")
#: a URL's scheme and the start of its authority
_URL_START = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://")
#: where a URL embedded in text ends: whitespace, quotes, brackets that enclose it in prose
_URL_END = re.compile(r"[\s\"'`<>]")
#: `key=value` / `key: value` pairs in free text (libpq DSNs, echoed overrides, log lines)
_KEY_VALUE = re.compile(r"(?i)(?P<key>(?:ssl|pg|db)?(?:password|passwd|passphrase|pwd|secret|"
                        r"credentials?|(?:auth|access|api|bearer|refresh|session|private|client)[_-]?(?:token|key))"
                        r"[\"']?)(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"'}\]]+)")


def is_secret_key(key) -> bool:
    """Whether a config key, query parameter or override key (its last dotted component) names a secret."""
    return isinstance(key, str) and bool(_SECRET_KEY.match(key.rsplit(".", 1)[-1].lstrip("+~")))


def _split_url(url: str):
    """(prefix `scheme://`, userinfo or None, rest) of a URL; the userinfo ends at the last `@`, so that any
    character a password may hold stays inside it (an `@` in a query string only makes the cut wider)."""
    match = _URL_START.match(url)
    if not match:
        return None
    prefix, after = url[:match.end()], url[match.end():]
    at = after.rfind("@")
    if at < 0:
        return prefix, None, after
    return prefix, after[:at], after[at + 1:]


def _redact_query(rest: str) -> str:
    """`host/path?query#fragment` with the values of secret-named query parameters masked."""
    if "?" not in rest:
        return rest
    head, _, query = rest.partition("?")
    query, hash_, fragment = query.partition("#")
    parts = []
    for piece in query.split("&"):
        key, eq, value = piece.partition("=")
        parts.append(f"{key}={MASK}" if eq and value and value != MASK and is_secret_key(unquote(key)) else piece)
    return f"{head}?{'&'.join(parts)}{hash_}{fragment}"


def redact_url(url: str) -> str:
    """One URL with its password (whatever it holds) and its secret query parameters replaced by ***."""
    split = _split_url(url)
    if split is None:
        return url
    prefix, userinfo, rest = split
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        userinfo = f"{user}:{MASK}" if colon else user
        return f"{prefix}{userinfo}@{_redact_query(rest)}"
    return prefix + _redact_query(rest)


def redact(value: str | None) -> str | None:
    """A storage URL, an override (`key=value`) or any text, with every secret in it replaced by ***."""
    if not value or not isinstance(value, str):
        return value
    return redact_text(value)


def _redact_override(text: str) -> str | None:
    """`key=value` with a secret-named key: the value masked; None when `text` is no such override."""
    key, eq, value = text.partition("=")
    if eq and value and re.fullmatch(r"[+~]{0,2}[\w.\-/@]+", key) and is_secret_key(key):
        return f"{key}={MASK}"
    return None


def redact_text(text: str) -> str:
    """Free text (an error line, a command line, a CSV or markdown file) with every URL's credentials, every
    secret-named `key=value` and every secret-named override masked."""
    if not text or not isinstance(text, str):
        return text
    override = _redact_override(text)
    if override is not None:
        return override
    key, eq, value = text.partition("=")
    if eq and re.fullmatch(r"[+~]{0,2}[\w.\-/@]+", key):
        if _URL_START.match(value):
            return f"{key}={redact_url(value)}"  # an override whose value is a URL: all of the value is the URL
        if len(value) > 2 and value[0] in "\"'" and value[-1] == value[0] and _URL_START.match(value[1:-1]):
            return f"{key}={value[0]}{redact_url(value[1:-1])}{value[0]}"  # Hydra's quoted value
    if _URL_START.match(text) and "\n" not in text:
        return redact_url(text)  # a whole URL: a password may even hold a space or a quote
    if "://" in text:
        out, position = [], 0
        for match in _URL_START.finditer(text):
            if match.start() < position:
                continue
            end = _URL_END.search(text, match.end())
            stop = end.start() if end else len(text)
            while stop > match.end() and text[stop - 1] in ".,;:)]}":  # prose punctuation after the URL
                stop -= 1
            out.append(text[position:match.start()])
            out.append(redact_url(text[match.start():stop]))
            position = stop
        text = "".join(out) + text[position:]
    return _redact_key_values(text)


_KEYWORDS = ("pass", "pwd", "secret", "credential", "token", "key")


def _redact_key_values(text: str) -> str:
    """Mask `key=value` pairs with secret-named keys. The regex is tried only around occurrences of the key
    words (found by plain substring search), so a multi-megabyte table or embedded image costs milliseconds."""
    low, size = text.lower(), len(text)
    starts: set[int] = set()
    for word in _KEYWORDS:
        at = low.find(word)
        while at >= 0:
            end = at + len(word)
            while end < size and end - at < 12 and low[end].isalpha():  # the rest of the key word (pass-word)
                end += 1
            if end < size and low[end] in "\"'":
                end += 1
            while end < size and low[end] in " \t":
                end += 1
            if end < size and low[end] in "=:":  # only a key followed by = or : can carry a value
                starts.update(range(max(0, at - 9), at + 1))  # a prefix such as ssl, db, access_ may come first
            at = low.find(word, at + 1)
    if not starts:
        return text
    out, position = [], 0
    for start in sorted(starts):
        if start < position:
            continue
        match = _KEY_VALUE.match(text, start)
        if match is None:
            continue
        out.append(text[position:start])
        out.append(_mask_value(match))
        position = match.end()
    return "".join(out) + text[position:]


def _mask_value(match) -> str:
    value, start = match.group("value"), match.start()
    before = match.string[start - 1] if start else ""
    if before and ((before.isascii() and before.isalnum()) or before in "+/"):  # in a word, or base64 (an image)
        return match.group(0)
    if value.strip("\"'") in ("", MASK) or value.lstrip("\"'").startswith(MASK):
        return match.group(0)
    quote_char = value[0] if value[0] in "\"'" else ""
    return f"{match.group('key')}{match.group('sep')}{quote_char}{MASK}{quote_char}"


def redact_data(data):
    """A nested config (dicts, lists, strings): secret-named keys masked, every string through `redact_text`."""
    if isinstance(data, dict):
        return {k: (MASK if is_secret_key(k) and data[k] not in (None, "") and not isinstance(data[k], (dict, list))
                    else redact_data(v)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v) for v in data) if isinstance(data, tuple) else [redact_data(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


def has_redacted(data) -> bool:
    """Whether a (redacted) nested config holds a masked secret (which a worker must be given again)."""
    if isinstance(data, dict):
        return any(has_redacted(v) for v in data.values())
    if isinstance(data, (list, tuple)):
        return any(has_redacted(v) for v in data)
    return isinstance(data, str) and MASK in data


def secrets_of(url: str | None) -> list[str]:
    """The secrets a URL carries (its password and its secret query values), raw and decoded, longest first."""
    split = _split_url(url) if isinstance(url, str) else None
    found: set[str] = set()
    if split:
        _, userinfo, rest = split
        if userinfo and ":" in userinfo:
            found.add(userinfo.partition(":")[2])
        if "?" in rest:
            for key, value in parse_qsl(rest.partition("?")[2].partition("#")[0], keep_blank_values=False):
                if is_secret_key(key):
                    found.add(value)
    variants = set()
    for secret in found:
        variants |= {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    return sorted((v for v in variants if len(v) >= 3 and v != MASK), key=len, reverse=True)


def _redact_text(text: str, url: str | None) -> str:
    """`text` with every URL in it redacted, and the secrets of `url` (if any) replaced wherever they appear
    (a driver's message may quote a password on its own)."""
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return redact_text(text)


def override_secrets(text: str) -> list[str]:
    """The secrets an override or a URL carries: its URL's password and secret query values, or the whole value
    of a secret-named key."""
    key, eq, value = text.partition("=") if isinstance(text, str) else ("", "", "")
    found = set(secrets_of(value if eq else text))
    if eq and value and is_secret_key(key):
        found.add(value)
    if not eq:
        found |= set(secrets_of(text))
    return sorted((s for s in found if len(s) >= 3 and s != MASK), key=len, reverse=True)


def scrub(message: str, sources) -> str:
    """`message` (an error line that may quote `sources`, e.g. overrides) with each secret of the sources
    replaced wherever it appears, and then redacted as any text."""
    for source in sources:
        for secret in override_secrets(source):
            message = message.replace(secret, MASK)
    return redact_text(message)


import models.errors  # noqa: E402  (every ConfigError message passes through redact_text from now on)

models.errors.redact = redact_text
