"""The contract every evaluation protocol follows, and the registry of protocols."""

from __future__ import annotations

from typing import Any

from fiqa_bench.registry import Registry

#: The protocols: every module of ``protocols/`` (installed as ``fiqa_bench.protocols``) registers here.
PROTOCOLS: Registry[Any] = Registry("protocol", plugins="fiqa_bench.protocols")
