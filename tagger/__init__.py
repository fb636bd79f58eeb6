"""tagger: caption photo archives through the CloudSight API.

The library works without the CLI: ``tagger.client.cloudsight`` is the HTTP client
(the original ``cloudsight`` package's API), ``tagger.pipeline.run`` the
whole scan-submit-poll-write pipeline (``tagger.pipeline.dry_run`` counts what
it would spend), ``tagger.emulator`` a CloudSight-compatible server for offline use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
