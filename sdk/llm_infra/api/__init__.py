"""The resource API: one pydantic model per kind (group infra.llmdevops.io), the base of everything.

Imports nothing else of llm_infra (an import-linter contract checks it): the
CRDs, the operator, the control plane and the SDK are all generated from or
built on these models.
"""
