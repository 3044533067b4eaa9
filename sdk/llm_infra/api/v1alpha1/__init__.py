"""Version v1alpha1 of the infra.llmdevops.io resources: one module per kind."""

from llm_infra.api.v1alpha1.auditsink import AuditSink
from llm_infra.api.v1alpha1.configsource import ConfigSource
from llm_infra.api.v1alpha1.route import Route
from llm_infra.api.v1alpha1.vectorcollection import VectorCollection

VERSION = "v1alpha1"

KINDS = (VectorCollection, ConfigSource, AuditSink, Route)

__all__ = ["KINDS", "VERSION", "AuditSink", "ConfigSource", "Route", "VectorCollection"]
