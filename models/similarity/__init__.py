"""The similarity wing: token vectors from an encoder, optimal transport between them, scores and rankings.

Modules: ``encoder`` (tokenize and embed; texts packed into shared rows by ``packing`` and run by
the traced forward pass of ``packed_model``), ``transport`` (the math: NumPy and POT only),
``methods`` (the one table of methods), ``scoring`` (pairs and pruned rankings) and ``engine``
(the synchronous engine and the server's async façade). A new method is a row in ``methods``.
"""

from models.exports import lazy_attributes

_EXPORTS = {
    "TokenEncoder": "encoder",
    "EncoderSpec": "encoder",
    "TokenizedText": "encoder",
    "EncodedText": "encoder",
    "TextTooLongError": "encoder",
    "EmptyTextError": "encoder",
    "TextError": "encoder",
    "Method": "methods",
    "METHODS": "methods",
    "METHOD_NAMES": "methods",
    "DEFAULT_METHOD": "methods",
    "method_named": "methods",
    "Transport": "transport",
    "TransportError": "transport",
    "PairScore": "scoring",
    "AlignedTokens": "scoring",
    "Ranking": "scoring",
    "RankedCandidate": "scoring",
    "score_pair": "scoring",
    "score_pairs": "scoring",
    "rank_candidates": "scoring",
    "SimilarityEngine": "engine",
    "AsyncSimilarityEngine": "engine",
    "ScoredPairs": "engine",
    "RankedTexts": "engine",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
