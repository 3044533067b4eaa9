"""llm_infra.audit: the tamper-evident audit log and the JetStream stream an AuditSink keeps it in.

`_chain`: records, a SHA-256 hash chain, signed checkpoints, a streaming
verifier (`verify_chain`), redaction and `AuditLog`, which publishes chained
records through any `Publisher` (the `llm_infra.mq` JetStreamQueue fits).

`_streams`: the AuditSink's JetStream side, shared by the operator and the
standalone control plane: the stream and per-sink consumer specs (pure),
`ensure_audit_stream`, lag for status, and `delete_stream`, which refuses to
drop undelivered records unless forced::

    from llm_infra import audit

    plan = await audit.ensure_audit_stream(js, "team-a", "platform-audit", spec)
    log = audit.AuditLog(queue, audit.audit_subject("team-a", "platform-audit"))
"""

from llm_infra.audit._chain import (
    GENESIS_HASH,
    MASK,
    Actor,
    AuditEvent,
    AuditLog,
    AuditRecord,
    Checkpoint,
    HashChain,
    Outcome,
    Publisher,
    Resource,
    Signer,
    Verifier,
    VerifyResult,
    canonical_record_bytes,
    query,
    record_hash,
    redact,
    verify_chain,
    verify_checkpoint,
)
from llm_infra.audit._streams import (
    DURABLE_PREFIX,
    SUBJECT_PREFIX,
    AuditStreamPlan,
    ConsumerLag,
    StreamState,
    audit_subject,
    consumer_lag,
    consumer_spec,
    default_stream_name,
    delete_stream,
    ensure_audit_stream,
    require_audit_stream,
    sink_durable,
    stream_name,
    stream_spec,
    stream_state,
    undelivered,
)

__all__ = [
    "DURABLE_PREFIX",
    "GENESIS_HASH",
    "MASK",
    "SUBJECT_PREFIX",
    "Actor",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "AuditStreamPlan",
    "Checkpoint",
    "ConsumerLag",
    "HashChain",
    "Outcome",
    "Publisher",
    "Resource",
    "Signer",
    "StreamState",
    "Verifier",
    "VerifyResult",
    "audit_subject",
    "canonical_record_bytes",
    "consumer_lag",
    "consumer_spec",
    "default_stream_name",
    "delete_stream",
    "ensure_audit_stream",
    "query",
    "record_hash",
    "redact",
    "require_audit_stream",
    "sink_durable",
    "stream_name",
    "stream_spec",
    "stream_state",
    "undelivered",
    "verify_chain",
    "verify_checkpoint",
]
