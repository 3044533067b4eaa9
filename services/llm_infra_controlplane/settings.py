"""Settings of the control plane process: built once at start-up and injected, never global."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

DATA_DIR_ENV = "LLM_INFRA_DATA_DIR"


def default_data_dir() -> Path:
    """$LLM_INFRA_DATA_DIR, else the XDG data home's llm-infra folder (~/.local/share/llm-infra)."""
    if configured := os.environ.get(DATA_DIR_ENV):
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "llm-infra"


class Settings(BaseModel):
    """Where the control plane listens and keeps its data. Standalone defaults: loopback only."""

    host: str = Field(
        "127.0.0.1", description="address to bind; 0.0.0.0 only behind a network policy"
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="where embedded data lives (collections/<collectionName>/ per collection);"
        " in a cluster, the StatefulSet's volume",
    )
