"""Real servers for the tests: each module starts one, on free ports in a temp dir.

`kube` (etcd + kube-apiserver), `helm`, `nats` (JetStream), `openbao` (the
Vault API) and `qdrant` (the embedded core and the server API). tests/conftest.py
turns them into session-scoped fixtures that hand over ready servers; a failing
test's report carries the logs of the servers it used.
"""
