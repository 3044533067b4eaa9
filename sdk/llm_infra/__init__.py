"""llm-infra SDK: the infrastructure modules LLM workloads import.

`import llm_infra` is cheap: it loads no engine client. Import the module you
need and qualify at the call site, e.g. ``from llm_infra import errors``.
"""

from importlib import metadata

__version__ = metadata.version("llm-infra")

__all__ = ["__version__"]
