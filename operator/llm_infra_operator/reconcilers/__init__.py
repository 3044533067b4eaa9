"""One reconciler per kind: pure `decide_*` functions plus the `Reconciler` that applies them."""
