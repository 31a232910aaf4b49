"""Public benchmarks, beside the service: dataset readers, baselines, metrics, KB export and report drivers.

``sts`` (STS-B and SICK: Spearman of every similarity method), ``lcquad`` (LC-QuAD 1.0 questions and
the closed-world KB they imply, exported as simlink inputs), ``baselines`` (dictionary and dense
linkers), ``metrics`` (precision, recall, F1 and more) and ``link_report`` (every linking method on
one split). The engines never import this package; ``simlink evaluate`` drives it.
"""
