"""Settings of the control plane process: built once at start-up and injected, never global."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Where the control plane listens. Standalone defaults: loopback only."""

    host: str = Field(
        "127.0.0.1", description="address to bind; 0.0.0.0 only behind a network policy"
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$")
