"""XMP sidecars: where captions and keywords go so that every photo app reads them, and how they are undone.

Owns: ``xmp`` (packets that re-serialise as written), ``write`` (write,
strip) built from ``read`` (a sidecar, its managed fields, the photo's
metadata), ``provenance`` (tagger's ``tagger:`` record), ``fields`` (what
each managed field becomes), ``repair`` (legacy sidecars) and ``merge`` (the
atomic merge loop), ``mwg`` (the photo's own metadata by the Metadata Working
Group's rules), ``naming`` (where a sidecar lives, display names),
``readers`` (what each photo app will show), ``writeback`` (ledger ->
sidecars), ``adopt`` (captions taken back from sidecars when the ledger
is lost) and ``embed`` (the same decisions as exiftool CSV cells, for the
exports' exiftool profile).

May import: the standard library, defusedxml, ``tagger.keywords``,
``tagger.ledger``, ``tagger.prepare`` (the photo's embedded metadata and
formats), ``tagger.atomic``, ``tagger.display``, ``tagger.errors``. Not the
client, the pipeline, the exports or the contact sheet.
"""
