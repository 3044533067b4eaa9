"""Standalone mode (`llm-infra up`).

A folder of resource YAML applied and followed (`applier`), and the nats-server
child process (`nats_child`).
"""
