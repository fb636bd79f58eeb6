"""The HTML contact sheet: one self-contained page of thumbnails, captions, keywords and filters, no network.

Owns: ``page`` (the page itself), ``assets`` (its stylesheet and script,
the package data files ``sheet.css`` and ``sheet.js``) and ``thumbs``
(small JPEG thumbnails within a byte budget).

May import: the standard library, Pillow, ``tagger.prepare`` (its formats:
the one HEIF registration), ``tagger.exports`` (its records),
``tagger.atomic``, ``tagger.errors``. Not the client, the pipeline, the
ledger or the sidecars.
"""
