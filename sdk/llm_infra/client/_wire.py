"""The base of every wire model of the /v1 API: camelCase on the wire, snake_case in Python.

`Wire` reads answers leniently (unknown members ignored: a newer control plane
must not break an older client); `StrictWire` is for request bodies that refuse
unknown members (a typo must not silently drop a filter) and non-finite numbers.
The control plane validates requests with the same models, so both sides agree.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class StrictWire(Wire):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


__all__ = ["StrictWire", "Wire"]
