"""Served configurations.

The current version of each ConfigSource's document and its watchers (`store`),
and the API that reads and watches them (`routes`).
"""
