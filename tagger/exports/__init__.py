"""CSV and JSONL exports of the ledger's captions, shaped for spreadsheets and DAM importers.

Owns: ``records`` (plain records passed between the ledger and the
writers), ``readout`` (ledger rows as records, shared with the contact
sheet), ``writer`` (the export profiles and the CSV/JSONL writers) and
``profile_names`` (the profiles' names, for the CLI's help without the writers).

May import: the standard library, ``tagger.keywords``, ``tagger.ledger``,
``tagger.sidecars`` (its ``embed``: the exiftool profile takes the sidecar
merge's decisions from it), ``tagger.atomic``, ``tagger.display``,
``tagger.errors``. Not the client, the pipeline or the contact sheet.
"""
