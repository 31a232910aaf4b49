"""The linking wing: a seq2seq model writes entity names, or subjects and predicates, under a prefix trie.

Modules: ``seq2seq`` (loading any seq2seq model, or bert2bert warm-started from the embedded
encoder; the linking tokens), ``generation`` (beam search constrained by a trie), ``candidates``
(lexical heuristics: which names a text mentions), ``query`` (a link query, without model code),
``limits`` (what one query may ask for, checked alike over HTTP and in bulk jobs), ``engine`` (the
synchronous engine and the server's async façade), ``training_data`` and ``trainer`` (fine-tuning
on a knowledge base), and ``vocabulary`` (tokens for the characters of a knowledge base the
tokenizer cannot spell).
A new linking heuristic goes in ``candidates``, or beside it, where the engine can apply it.
"""

from models.exports import lazy_attributes

_EXPORTS = {
    "Task": "query",
    "Seq2SeqModel": "seq2seq",
    "LinkingTokenizer": "seq2seq",
    "load_seq2seq_model": "seq2seq",
    "load_linking_tokenizer": "seq2seq",
    "format_input": "seq2seq",
    "MENTION_START": "query",
    "MENTION_END": "query",
    "Hypothesis": "generation",
    "constrained_beam_search": "generation",
    "NgramCandidates": "candidates",
    "LexicalCandidates": "candidates",
    "LexicalMatch": "candidates",
    "find_mention": "candidates",
    "words": "candidates",
    "LinkingEngine": "engine",
    "LinkerSpec": "engine",
    "AsyncLinkingEngine": "engine",
    "LinkQuery": "query",
    "AUTO": "query",
    "EntityMatch": "engine",
    "PairMatch": "engine",
    "Matches": "engine",
    "UnknownCandidatesError": "query",
    "LinkLimits": "limits",
    "QueryProblem": "limits",
    "query_problem": "limits",
    "index_problem": "limits",
    "task_problem_on": "limits",
    "unknown_ids_problem": "limits",
    "NO_SIZE_LIMITS": "limits",
    "Example": "training_data",
    "entity_examples": "training_data",
    "fact_examples": "training_data",
    "read_labelled": "training_data",
    "TrainConfig": "trainer",
    "TrainReport": "trainer",
    "train": "trainer",
    "latest_checkpoint": "trainer",  # re-exported from models.training
    "VocabularyReport": "vocabulary",
    "extend_vocabulary": "vocabulary",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
