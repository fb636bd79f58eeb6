"""Where captions go: XMP sidecars, keywords, CSV/JSONL exports and the HTML contact sheet.

Owns: ``xmp`` (packets that re-serialise as written), ``sidecar`` (merge,
write, strip), ``naming`` (where a sidecar lives, display names),
``keywords``, ``writeback`` (ledger -> sidecars), ``records`` and ``readout``
(ledger rows as records), ``export``, ``report`` with ``report_assets`` and
``thumbs``.

May import: the standard library, Pillow, defusedxml, ``tagger.ledger``,
``tagger.atomic``, ``tagger.errors``. Not the client or the pipeline.
"""
