"""The resource API: one pydantic model per kind (group infra.llmdevops.io), the base of everything.

Imports nothing else of llm_infra (an import-linter contract checks it): the
CRDs (`crdgen`), the operator, the control plane and the SDK are all built on
these models. The kinds are in `llm_infra.api.v1alpha1`.
"""

from llm_infra.api._model import ApiModel, KeyedBy, Rule
from llm_infra.api._resource import (
    GROUP,
    CrdInfo,
    ObjectMeta,
    PrinterColumn,
    Resource,
    ResourceStatus,
)

__all__ = [
    "GROUP",
    "ApiModel",
    "CrdInfo",
    "KeyedBy",
    "ObjectMeta",
    "PrinterColumn",
    "Resource",
    "ResourceStatus",
    "Rule",
]
