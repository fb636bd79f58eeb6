"""How images are prepared: a light module, so that a run that prepares nothing need not import the preparer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PrepareOptions"]


@dataclass(frozen=True)
class PrepareOptions:
    """How to prepare images: output size and quality, safety limits, whether to keep GPS."""

    max_edge: int = 1024
    quality: int = 85
    max_pixels: int = 100_000_000
    send_location: bool = False
    time_limit: float = 60.0
    read_metadata: bool = False  # read_once: also read the embedded metadata the sidecar will copy
