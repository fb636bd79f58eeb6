"""The original ``cloudsight`` client's API: ``from tagger import cloudsight`` ports a script.

This name is kept for existing scripts; the client lives in ``tagger.client.cloudsight``
and this module *is* that module (one object, so patching either patches both).
"""

import sys

from tagger.client import cloudsight as _client

sys.modules[__name__] = _client
