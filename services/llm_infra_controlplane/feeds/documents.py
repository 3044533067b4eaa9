"""What the operator wrote, rebuilt for serving: pure functions, no Kubernetes calls.

- `rebuild_document`: a ConfigSource's document from its ConfigMap (plain part) and
  Secret (sensitiveKeys), checked against the content hash the operator announced;
- `check_route_table`: a Route's compiled table from its ConfigMap, checked against
  its own hash (docs/route-table.md);
- `sink_secret_names`: the Secrets an AuditSink reads.

`feeds.Feeds` calls these on what its informers see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from llm_infra import config, errors, jsondoc, router
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec

HASH_ANNOTATION = config.HASH_ANNOTATION
TABLE_HASH_ANNOTATION = router.ROUTE_TABLE_HASH_ANNOTATION

_ENV_KEY = re.compile(r"[A-Z0-9_]+")


def rebuild_document(
    plain: Mapping[str, str],
    sensitive: Mapping[str, str] | None,
    content_hash: str,
    *,
    secret_pending: bool = False,
) -> dict[str, Any]:
    """The document the operator rendered into a ConfigMap (`plain`) and its Secret (`sensitive`).

    json/yaml: the ConfigMap's one key holds the document without its
    sensitiveKeys, the Secret's same key holds those; they are deep-merged back,
    and the result must hash to `content_hash` (the ConfigMap's annotation), else
    a part is missing or from another version and ConfigError says so.

    env: one KEY per leaf, in the ConfigMap and the Secret; the nested document
    cannot be recovered from it, so the flat KEY -> value mapping is served as the
    ConfigMap holds it, with `content_hash` (the merged document's hash, as the
    operator's status and rollout annotation carry it) as its version. Nothing
    here can prove the sensitive part complete: with `secret_pending` (the
    ConfigMap names a Secret, or a Secret of another version exists) it waits.
    """
    if len(plain) == 1:
        ((key, text),) = plain.items()
        document = _parse_mapping(text)
        if document is not None:
            if sensitive is not None and key in sensitive:
                part = _parse_mapping(sensitive[key])
                if part is None:
                    raise errors.ConfigError(
                        f"Secret key {key} holds no JSON/YAML mapping: the operator rewrites it",
                        key=key,
                    )
                document = _deep_merge(document, part)
            if config.content_hash(document) == content_hash:
                return document
    if plain and all(_ENV_KEY.fullmatch(key) for key in plain):
        if sensitive is None and secret_pending:
            raise errors.ConfigError(
                "target format env: the sensitive part's Secret is not written for this version"
                " yet; served once it is",
                key=HASH_ANNOTATION,
            )
        return {**plain, **(sensitive or {})}
    raise errors.ConfigError(
        "the document differs from its content-hash annotation: the Secret with its sensitive"
        " part is missing or of another version; served once the operator has written both",
        key=HASH_ANNOTATION,
    )


def _parse_mapping(text: str) -> dict[str, Any] | None:
    """A json or yaml document as `config.render` writes it; None when it is no mapping."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return None  # never the parser's message: it quotes the text
    return value if isinstance(value, dict) else None


def _deep_merge(base: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    # Not RFC 7386: a sensitive value may be null, and a null must come back, not delete.
    merged = dict(base)
    for key, value in part.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_route_table(data: Mapping[str, str], annotations: Mapping[str, str]) -> router.RouteTable:
    """The RouteTable of a table ConfigMap, if its hash checks out (docs/route-table.md)."""
    text = data.get(router.ROUTE_TABLE_KEY)
    if text is None:
        raise errors.ConfigError(
            f"no {router.ROUTE_TABLE_KEY} key: the operator rewrites the table",
            key=router.ROUTE_TABLE_KEY,
        )
    table = router.RouteTable.model_validate_json(text)
    version = jsondoc.canonical_sha256(table.model_dump(mode="json", exclude={"version"}))
    announced = annotations.get(TABLE_HASH_ANNOTATION, table.version)
    if not version == table.version == announced:
        raise errors.ConfigError(
            f"table version {table.version[:12]} differs from its content ({version[:12]}) or"
            f" from the {TABLE_HASH_ANNOTATION} annotation: not served; the operator rewrites it",
            key=TABLE_HASH_ANNOTATION,
        )
    return table


def sink_secret_names(spec: AuditSinkSpec) -> list[str]:
    """The Secrets an AuditSink reads (webhook keys and CAs, store credentials, signing key)."""
    names = {
        ref.name
        for sink in spec.sinks
        for ref in (
            sink.webhook.secret_ref if sink.webhook else None,
            sink.webhook.ca_secret_ref if sink.webhook else None,
            sink.object_store.credentials_secret_ref if sink.object_store else None,
        )
        if ref is not None
    }
    if (signing := spec.tamper_evidence.signing_key_secret_ref) is not None:
        names.add(signing.name)
    return sorted(names)


__all__ = ["check_route_table", "rebuild_document", "sink_secret_names"]
