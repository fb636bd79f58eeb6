"""CSV and JSONL exports of the ledger's captions, shaped for spreadsheets and DAM importers.

Owns: ``records`` (plain records passed between the ledger and the
writers), ``readout`` (ledger rows as records, shared with the contact
sheet) and ``writer`` (the export profiles and the CSV/JSONL writers).

May import: the standard library, ``tagger.keywords``, ``tagger.ledger``,
``tagger.atomic``, ``tagger.display``, ``tagger.errors``, and
``tagger.sidecars.embed`` alone of the sidecars (the exiftool profile takes
the sidecar merge's decisions from it). Not the client, the pipeline, the
rest of the sidecars or the contact sheet.
"""
