"""Reading images: sniffing formats, hashing their content, decoding and downsizing for upload.

Owns: ``formats`` (which files are images: the one table of signatures every
module asks), ``tiff`` (the one reader of TIFF directories), ``hashing`` (content identity
that ignores metadata, one ``hash_*`` module per format family, the pixel
fallback in ``hash_pixels``), ``decode`` (decoding internals),
``normalise`` (the upload JPEG, the ``Preparer``, ``read_once``: hash and prepare from one read),
``embedded`` (the metadata an image carries, which a new sidecar copies), ``fingerprint`` (the
perceptual fingerprint of the decoded pixels, for similar photos) and
``workers`` (the killable process pool preparation runs in).

May import: the standard library, Pillow, pillow-heif, rawpy and numpy (the
last three when installed: the ``heic`` and ``raw`` extras), ``tagger.errors``.
Not the ledger, the client, the sidecars, the exports or the contact sheet.
"""
