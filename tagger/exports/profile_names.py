"""The export profiles' names, without the writers: the CLI's help lists them at start-up for free."""

from __future__ import annotations

__all__ = ["PROFILE_NAMES"]

#: Every export profile, in the order help texts list them; ``writer.PROFILES`` has one entry for each.
PROFILE_NAMES: tuple[str, ...] = ("default", "excel", "resourcespace", "canto", "aem", "exiftool")
