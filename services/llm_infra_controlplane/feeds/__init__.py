"""In a cluster: what the operator writes, served.

The informers that feed the services (`feeds`), the pure rebuilding of what
they read (`documents`) and the exact RBAC they need (`rbac`).
"""
