"""Vector collections.

The registry of embedded and Qdrant-backed collections (`registry`), the data
API (`routes`) and the collection admin API the operator calls (`admin`).
"""
