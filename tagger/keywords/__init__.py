"""Keywords: data derived from captions, not an output of their own.

Owns: ``derive`` (the words of a caption that carry meaning, in the user's
vocabulary where there is one), ``language`` (lemmas, stop words, number
and vague words of the caption's language), ``vocabulary`` (the user's
keyword tree, read from a Lightroom export, a CSV thesaurus or a digiKam tag
list) and ``stored`` (each completed job's keywords derived once and kept in
the ledger).

May import: the standard library, simplemma, stopwords, ``tagger.ledger``,
``tagger.errors``. Nothing that writes files for the user.
"""
