"""Audit trails.

The AuditSink service (`service`: ingest, query, verify), the per-sink writers
(`writer`) and the audit API (`routes`).
"""
