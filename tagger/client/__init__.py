"""Talking to CloudSight: the seed's client API, and the retry and pacing policies around it.

Owns: ``cloudsight`` (the original package's API: ``SimpleAuth``, ``OAuth``,
``API``, the ``STATUS_*``/``REASON_*`` constants and the ``APIError`` tree),
``protocol`` (those constants and errors without the HTTP stack, which
``cloudsight`` re-exports), ``lazy`` (an ``API`` built when first used),
``retry`` (tenacity policies and the shared 429 gate), ``pacing``
(requests-per-second and AIMD in-flight limits) and ``deadline`` (a total
deadline per request, on top of requests' per-read timeout).

May import: the standard library, requests, urllib3 (requests' transport, for
its connection errors), requests-oauthlib, oauthlib (its OAuth 1 core),
tenacity, ``tagger.errors`` and the package's ``tagger.__version__`` (the
User-Agent). Nothing else of tagger: the client works on its own.
"""
