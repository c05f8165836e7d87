"""Secret redaction: one implementation for config files, reports, exports and logs.

Values of secret-looking keys (api_key, Authorization, HF_TOKEN, *_key, passwords, cookies)
become ``***``; strings lose bearer tokens, ``sk-...`` keys, passwords in URLs and key-like
query parameters. Keys such as ``max_tokens`` or ``tokenizer`` are not secrets.
"""
from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(api[_-]?key|authorization|auth[_-]?header|secret|password|passwd|cookie|credential"
    r"|token$|^token[_\-.]|[_\-.]token[_\-.]?(id|value)?$|(^|[_\-.])key$)", re.I)
_HEADER_LINE = re.compile(r"^\s*([A-Za-z0-9_\-.]+)\s*[:=]\s*(.+)$")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s]+@")
_URL_QUERY_SECRET = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|auth|sig|signature)=)[^&#\s]+")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_SK = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")


def is_secret_key(key: str) -> bool:
    """True for keys like api_key, Authorization, HF_TOKEN, swanlab_key, client_secret."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """Remove secrets embedded in a string: bearer tokens, ``sk-...`` keys, passwords in
    URLs (``http://user:pw@host``) and key-like query parameters."""
    m = _HEADER_LINE.match(text)
    if m and is_secret_key(m.group(1)):
        return f"{m.group(1)}: {REDACTED}"
    text = _BEARER.sub(f"Bearer {REDACTED}", text)
    text = _SK.sub(REDACTED, text)
    text = _URL_USERINFO.sub(lambda mm: mm.group(1) + REDACTED + "@", text)
    text = _URL_QUERY_SECRET.sub(lambda mm: mm.group(1) + REDACTED, text)
    return text


def redact_strings(value: Any) -> Any:
    """A copy of ``value`` with :func:`redact_text` applied to every string (keys are kept):
    for result data, where a key like ``output_token_throughput`` is not a secret."""
    if isinstance(value, dict):
        return {k: redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_strings(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets removed: the value of every secret-looking key
    (api_key, authorization, token, secret, password, cookie, ``*_key``) becomes ``***``, and
    strings are cleaned by :func:`redact_text`."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, "", [], {}, False):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
