"""Scrubs credentials out of free text before it becomes part of an error.

`llm_infra.errors` runs every string it is given (messages and context fields)
through `redact` at construction, so nothing downstream (str, repr, problem
documents, spans, logs) can leak what a library put into its own message.
Pattern-based by design: it catches the shapes credentials take in URLs,
headers and key/value text, not a secret that looks like any other word.
"""

from __future__ import annotations

import re

MASK = "***"

# Parameter names whose value is a credential in any `name=value` or `name: value`
# form: the word itself or any compound ending in it (access_token,
# X-Amz-Signature, client_secret, x-api-key), but not words merely containing
# it (max_tokens, tokenizer).
_STRONG_NAMES = (
    r"(?:[\w.-]*[_.-])?(?:token|secret|password|passwd|pwd|passphrase|apikey"
    r"|credentials?|signature)"
    r"|[\w.-]*[_.-]key"
)
# Too common as plain words ("missing key: a.b", "code: 404") to be masked in
# `name: value` prose; masked only as `name=value` or with a quoted value.
_WEAK_NAMES = r"key|code|sig"
_WEAK_NAME = re.compile(_WEAK_NAMES, re.IGNORECASE)

_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
# Everything up to the last "@" of the authority is userinfo (a password may hold "@").
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/?#]*@")
_AUTHORIZATION_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:[a-z][\w-]*\s+)?)"
    # A placeholder (`Bearer <token>` in a help text) is no credential.
    r"(?P<credential>(?!<[^<>\s]*>)(?![a-z][\w-]*\s+<)[^\s\"',;]+)",
    re.IGNORECASE,
)
# "Basic" stays case-sensitive so prose like "basic checks failed" survives.
_AUTH_SCHEME = re.compile(r"(?P<scheme>\b(?:(?i:bearer)|Basic)\s+)[\w.~+/-]+=*")
_PAIR = re.compile(
    rf"""(?P<name>(?<![\w.-])(?:{_STRONG_NAMES}|{_WEAK_NAMES})(?![\w.-])
                 |["'](?:{_STRONG_NAMES}|{_WEAK_NAMES})["'])
         (?P<separator>\s*[=:]\s*)
         (?P<value>"[^"]*"|'[^']*'|[^\s&,;"'}}\])]+)""",
    re.IGNORECASE | re.VERBOSE,
)
# OpenBao/Vault service, batch and recovery tokens, current (hvs.) and legacy (s.) shapes.
_VAULT_TOKEN = re.compile(r"\b(?P<prefix>hv[sbr]|[sbr])\.[\w-]{20,}")
_JWT = re.compile(r"\beyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*")


def redact(text: str) -> str:
    """Return `text` with credentials replaced by ``***``; idempotent.

    Masks URL userinfo (``https://***@host/path``), sensitive query and
    key/value parameters (``token=***``, ``"password": "***"``), Authorization
    headers and Bearer/Basic credentials, OpenBao/Vault tokens, JWTs and PEM
    private keys. Hosts, paths and ordinary words are kept.
    """
    text = _PRIVATE_KEY_BLOCK.sub(MASK, text)
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _AUTHORIZATION_HEADER.sub(rf"\g<head>{MASK}", text)
    text = _AUTH_SCHEME.sub(rf"\g<scheme>{MASK}", text)
    text = _PAIR.sub(_mask_pair, text)
    text = _VAULT_TOKEN.sub(rf"\g<prefix>.{MASK}", text)
    return _JWT.sub(MASK, text)


def _mask_pair(match: re.Match[str]) -> str:
    name, separator, value = match["name"], match["separator"], match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    if ":" in separator and not quote and _WEAK_NAME.fullmatch(name.strip("\"'")):
        return match[0]
    if name == "apikey" and separator == ":" and not quote:
        # A subject (`apikey:<owner>`, how the control plane names a key's owner), not a key:
        # the key itself never follows its scheme without a space or an "=".
        return match[0]
    return f"{name}{separator}{quote}{MASK}{quote}"
