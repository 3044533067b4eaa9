"""AuditSink: an audit trail kept in a JetStream stream, delivered to sinks (short name `asink`).

Reconciled by the operator into a NATS JetStream stream that records audit
events at the policy's level (with redaction), chains and signs them for
tamper evidence, and delivers them to one or more sinks: files, webhooks or
object stores.
"""

from __future__ import annotations

import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from llm_infra.api._model import ApiModel, KeyedBy, Rule, UniqueItems
from llm_infra.api._resource import CrdInfo, PrinterColumn, Resource, ResourceStatus
from llm_infra.api.v1alpha1._common import (
    HTTP_URL,
    SPACE,
    Duration,
    Name,
    SecretKeyRef,
    SecretRef,
    cel_duration_at_most,
    duration_seconds,
)

Level = Literal["Metadata", "Request", "RequestResponse"]
RuleLevel = Literal["None", "Metadata", "Request", "RequestResponse"]
Storage = Literal["file", "memory"]


class Stream(ApiModel):
    """The JetStream stream that holds the audit events before delivery."""

    rules: ClassVar = (
        Rule(
            cel=cel_duration_at_most("duplicateWindow", "maxAge"),
            message="duplicateWindow must not be longer than maxAge",
            field=".duplicateWindow",
            check=lambda s: (
                s.max_age is None
                or duration_seconds(s.duplicate_window) <= duration_seconds(s.max_age)
            ),
        ),
        Rule(
            cel="has(self.name) == has(oldSelf.name)"
            " && (!has(self.name) || self.name == oldSelf.name)",
            message="name is immutable: the stream and its records keep their name; for a new"
            " stream, create a new AuditSink (and delete this one once its sinks have caught up)",
            field=".name",
            transition=True,
        ),
        *(
            Rule(
                cel=f"!has(oldSelf.{flag}) || !oldSelf.{flag} || (has(self.{flag}) && self.{flag})",
                message=f"{flag} cannot be turned off once on: JetStream refuses to lift it; for"
                " a stream without it, create a new AuditSink",
                field=f".{flag}",
                transition=True,
            )
            for flag in ("denyDelete", "denyPurge")
        ),
    )

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", max_length=255)
    """Stream name in JetStream; AUDIT_<namespace>_<name> when unset. Immutable (set or unset)."""
    storage: Storage = "file"
    """Where JetStream keeps the messages. Immutable: JetStream cannot change a stream's storage."""
    replicas: Literal[1, 3, 5] = 1
    """Copies of the stream in a NATS cluster: 1, 3 or 5 (an odd number keeps a Raft quorum)."""
    max_age: Duration | None = None
    """Discard events older than this; unlimited when unset."""
    max_bytes: int = Field(-1, ge=-1)
    """Most bytes the stream holds; -1 for unlimited."""
    max_msgs: int = Field(-1, ge=-1)
    """Most events the stream holds; -1 for unlimited."""
    discard: Literal["old", "new"] = "old"
    """At a limit, drop the oldest events (old) or refuse new ones (new)."""
    compression: Literal["none", "s2"] = "none"
    """Compression of stored messages (file storage)."""
    duplicate_window: Duration = "2m"
    """Window in which an event published twice (same id) is stored once; at most maxAge."""
    deny_delete: bool = True
    """Refuse deleting single events through the JetStream API. Once on, it stays on."""
    deny_purge: bool = True
    """Refuse purging the stream through the JetStream API. Once on, it stays on."""


class PolicyRule(ApiModel):
    """Events matching all of the rule's lists are recorded at its level; first match wins."""

    level: RuleLevel
    """Level of matching events; None records nothing."""
    actions: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]],
        Field(max_length=32),
        UniqueItems(),
    ] = Field(default_factory=list)
    """Actions matched, e.g. chat.completions or embeddings; all actions when empty."""
    resources: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]],
        Field(max_length=32),
        UniqueItems(),
    ] = Field(default_factory=list)
    """Resources matched, e.g. routes or vectorcollections/support-docs; all when empty."""
    users: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]],
        Field(max_length=32),
        UniqueItems(),
    ] = Field(default_factory=list)
    """Users or service accounts matched; all users when empty."""


class Policy(ApiModel):
    """What is recorded, and at which level of detail.

    The `rules` of the manifest are `audit_rules` in Python: `rules` of a model are its
    cross-field `Rule`s (see ApiModel).
    """

    level: Level = "Metadata"
    """Level of events no rule matches: Metadata (who, what, when), Request (plus the request
    body) or RequestResponse (plus the response body)."""
    audit_rules: Annotated[list[PolicyRule], Field(max_length=64)] = Field(
        default_factory=list, alias="rules"
    )
    """Rules tried in order; the first that matches sets an event's level."""
    redact: Annotated[
        list[Annotated[str, Field(pattern=r"^(/[^/]*)+$", max_length=512)]],
        Field(max_length=64),
        UniqueItems(),
    ] = Field(default_factory=list)
    """JSON pointers (RFC 6901) into request and response bodies whose values are replaced by
    a hash before recording, e.g. /messages or /choices."""


class FileSink(ApiModel):
    """Events appended as JSON lines to a file on the operator's volume."""

    path: str = Field(pattern=r"^/", min_length=1, max_length=4096)
    """Absolute path of the file."""
    rotate_bytes: int | None = Field(None, ge=1)
    """Start a new file when the current one reaches this many bytes; never when unset."""
    max_files: int | None = Field(None, ge=1, le=1000)
    """Rotated files kept; all when unset."""


class WebhookSink(ApiModel):
    """Events POSTed in batches to an HTTP endpoint."""

    url: str = Field(pattern=HTTP_URL, max_length=2048)
    """Endpoint URL."""
    secret_ref: SecretKeyRef | None = None
    """Secret key holding the HMAC key that signs each batch (X-Signature header)."""
    ca_secret_ref: SecretKeyRef | None = None
    """Secret key holding the PEM CA bundle that verifies the endpoint; system roots when unset."""
    timeout: Duration = "10s"
    """Timeout of one delivery."""


class ObjectStoreSink(ApiModel):
    """Events written in batches as objects to S3, GCS or a file URL."""

    url: str = Field(pattern=rf"^(s3|gs|file)://[^{SPACE}]+$", max_length=2048)
    """Bucket URL, e.g. s3://audit-archive or gs://audit-archive."""
    credentials_secret_ref: SecretRef | None = None
    """Secret holding the store's credentials; workload identity when unset."""
    prefix: str | None = Field(None, max_length=1024)
    """Key prefix of the objects written."""


class Sink(ApiModel):
    """A destination of the audit events: exactly one of file, webhook or objectStore."""

    rules: ClassVar = (
        Rule(
            cel="[has(self.file), has(self.webhook), has(self.objectStore)]"
            ".filter(x, x).size() == 1",
            message="set exactly one of file, webhook or objectStore",
            check=lambda s: sum(x is not None for x in (s.file, s.webhook, s.object_store)) == 1,
        ),
    )

    name: Name
    """Name of the sink, unique in the AuditSink."""
    file: FileSink | None = None
    """Append to a file."""
    webhook: WebhookSink | None = None
    """POST to a webhook."""
    object_store: ObjectStoreSink | None = None
    """Write objects to a bucket."""
    max_retries: int = Field(5, ge=0, le=100)
    """Delivery attempts of a batch after the first, with backoff, before it is reported failed."""
    batch_size: int = Field(100, ge=1, le=10000)
    """Most events per delivery."""


class TamperEvidence(ApiModel):
    """Hash chaining and signed checkpoints, so edits and gaps in the trail can be detected."""

    rules: ClassVar = (
        Rule(
            cel="!has(self.signingKeySecretRef) || !has(self.hashChain) || self.hashChain",
            message="signingKeySecretRef requires hashChain",
            field=".signingKeySecretRef",
            check=lambda t: t.signing_key_secret_ref is None or t.hash_chain,
        ),
    )

    hash_chain: bool = True
    """Each event carries the SHA-256 of the previous one."""
    signing_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding an Ed25519 private key (PEM) that signs each checkpoint."""
    checkpoint_every: int = Field(1000, ge=1, le=1000000)
    """Events between checkpoints (chain hash, signed when a key is set)."""


class Throttle(ApiModel):
    """Rate limit of the events delivered to each sink."""

    rules: ClassVar = (
        Rule(
            cel="double(self.burst) >= self.qps",
            message="burst must be at least qps",
            field=".burst",
            check=lambda t: t.burst >= t.qps,
        ),
    )

    qps: float = Field(10.0, gt=0)
    """Sustained events per second."""
    burst: int = Field(15, ge=1)
    """Events allowed at once above qps."""


class AuditSinkSpec(ApiModel):
    """Desired state of an audit sink."""

    rules: ClassVar = (
        Rule(
            cel="!has(self.stream) || !has(oldSelf.stream) || !has(oldSelf.stream.storage)"
            " || (has(self.stream.storage) && self.stream.storage == oldSelf.stream.storage)",
            message="stream.storage is immutable: JetStream cannot change a stream's storage;"
            " for other storage, create a new AuditSink",
            field=".stream.storage",
            transition=True,
        ),
    )

    stream: Stream = Field(default_factory=Stream)
    """The JetStream stream that holds the events."""
    policy: Policy = Field(default_factory=Policy)
    """What is recorded and how much of it."""
    sinks: Annotated[list[Sink], KeyedBy("name"), Field(min_length=1, max_length=16)]
    """Where the events are delivered, one entry per sink."""
    tamper_evidence: TamperEvidence = Field(default_factory=TamperEvidence)
    """Hash chaining and signed checkpoints."""
    throttle: Throttle | None = None
    """Rate limit of deliveries; unlimited when unset."""
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    """What happens to the JetStream stream when this resource is deleted."""
    delete_undelivered: bool = False
    """With deletionPolicy Delete: delete the stream even while it holds events a sink has not
    received (they are lost). Off: deletion waits until every sink has caught up."""


class SinkStatus(ApiModel):
    """Delivery state of one sink."""

    name: Name
    """Name of the sink."""
    consumer: str | None = Field(None, max_length=255)
    """Durable JetStream consumer that delivers to this sink."""
    delivered: int = Field(0, ge=0)
    """Events delivered."""
    lag: int = Field(0, ge=0)
    """Events in the stream not yet delivered."""
    last_error: str | None = Field(None, max_length=4096)
    """Error of the last failed delivery, if any."""
    last_delivery_time: datetime.datetime | None = None
    """When a batch was last delivered."""


class Checkpoint(ApiModel):
    """The latest checkpoint of the hash chain."""

    sequence: int = Field(ge=0)
    """Stream sequence of the last event covered."""
    hash: str = Field(max_length=128)
    """Chain hash (hex SHA-256) at that event."""
    time: datetime.datetime
    """When the checkpoint was made."""


class AuditSinkStatus(ResourceStatus):
    """Observed state of an audit sink."""

    stream_name: str | None = None
    """Name of the JetStream stream."""
    last_sequence: int | None = Field(None, ge=0)
    """Sequence of the last event stored."""
    first_sequence: int | None = Field(None, ge=0)
    """Sequence of the oldest event still stored."""
    messages: int | None = Field(None, ge=0)
    """Events stored in the stream."""
    bytes: int | None = Field(None, ge=0)
    """Bytes stored in the stream."""
    sinks: Annotated[list[SinkStatus], KeyedBy("name"), Field(max_length=16)] = Field(
        default_factory=list
    )
    """Delivery state, one entry per sink."""
    last_checkpoint: Checkpoint | None = None
    """The latest checkpoint."""


class AuditSink(Resource):
    """An audit trail in a JetStream stream, delivered to sinks, reconciled by the operator."""

    crd: ClassVar = CrdInfo(
        kind="AuditSink",
        plural="auditsinks",
        short_names=("asink",),
        version="v1alpha1",
        description="An audit trail kept in a NATS JetStream stream and delivered to files, "
        "webhooks or object stores, managed by llm-infra.",
        columns=(
            PrinterColumn("Stream", ".status.streamName", description="JetStream stream"),
            PrinterColumn(
                "Seq", ".status.lastSequence", type="integer", description="Last sequence"
            ),
        ),
    )

    spec: AuditSinkSpec
    """Desired state."""
    status: AuditSinkStatus | None = None
    """Observed state, written by the operator."""


__all__ = ["AuditSink", "AuditSinkSpec", "AuditSinkStatus"]
