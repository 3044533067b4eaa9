"""What the operator renders into the Helm chart's files (`make generate`).

Its exact RBAC (`rbac`) and kopf's peering CRDs for several replicas
(`peering`). Nothing here runs in the operator process; a unit test proves the
chart's copies fresh.
"""
