"""Path parameters of the /v1 API, validated as Kubernetes validates the names they carry."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# Kubernetes' rules: a namespace is a DNS label, an object name a DNS subdomain.
Namespace = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Name = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]

__all__ = ["Name", "Namespace"]
