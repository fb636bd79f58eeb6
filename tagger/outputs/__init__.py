"""Where captions go: XMP sidecars, keywords, CSV/JSONL exports and the HTML contact sheet.

Owns: ``xmp`` (packets that re-serialise as written), ``sidecar`` (merge,
write, strip), ``naming`` (where a sidecar lives, display names),
``keywords`` (with ``language``: lemmas and stop words, ``vocabulary``: the
user's keyword tree, ``derivation``: keywords stored per job), ``writeback`` (ledger -> sidecars), ``records`` and ``readout``
(ledger rows as records), ``export``, ``report`` with ``report_assets`` and
``thumbs``.

May import: the standard library, Pillow, defusedxml, simplemma, stopwords, ``tagger.ledger``,
``tagger.atomic``, ``tagger.errors``. Not the client or the pipeline.
"""
