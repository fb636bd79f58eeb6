"""Where captions go: XMP sidecars, keywords, CSV/JSONL exports and the HTML contact sheet.

Owns: ``xmp`` (packets that re-serialise as written), ``sidecar`` (write,
strip) built from ``sidecar_read`` (a sidecar, its managed fields, the
photo's metadata), ``provenance`` (tagger's ``tagger:`` record),
``sidecar_fields`` (what each field becomes), ``sidecar_repair`` (legacy
sidecars) and ``sidecar_merge`` (the atomic merge loop), ``naming`` (where a sidecar lives, display names),
``keywords`` (with ``language``: lemmas and stop words, ``vocabulary``: the
user's keyword tree, ``derivation``: keywords stored per job), ``writeback`` (ledger -> sidecars), ``records`` and ``readout``
(ledger rows as records), ``export``, ``report`` with ``report_assets`` and
``thumbs``.

May import: the standard library, Pillow, defusedxml, simplemma, stopwords, ``tagger.ledger``,
``tagger.atomic``, ``tagger.errors``. Not the client or the pipeline.
"""
