"""A CloudSight-compatible emulator for offline runs, tests and benchmarks.

It speaks the protocol over real HTTP on loopback (both authentication
schemes, both parameter styles, old and new paths), settles jobs after a
configurable latency, and injects faults on request. It recognises nothing:
the bundled sample images get their catalogued captions, anything else a
description of its colours, or a dark/bright/blurry skip.

May import: the standard library, Pillow, requests (fetching a remote image
URL, as the service does), oauthlib (checking OAuth 1 signatures). Nothing of
tagger: it stands in for the service, so it shares no code with the client it
tests.

    with Emulator(latency=(0.05, 0.1)) as emulator:
        ...  # point a client at emulator.url with emulator.key

Given ``state=FILE`` it keeps its jobs, balance and charges there between
processes, as the service keeps them between a client's runs; without it
(the default) it remembers nothing once stopped.
"""

from __future__ import annotations

from ._persist import StateFileBusy
from .server import Emulator, Faults, parse_latency, serve

__all__ = ["Emulator", "Faults", "StateFileBusy", "parse_latency", "serve"]
