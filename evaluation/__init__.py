"""Public benchmarks, beside the service: dataset readers, baselines, metrics, KB export and report drivers.

``sts`` (STS-B and SICK: Spearman of every similarity method), ``lcquad`` (LC-QuAD 1.0 questions and
the closed-world KB they imply, exported as simlink inputs), ``kgclue`` (KgCLUE's Chinese questions,
their closed-world KB and KgCLUE's official score), ``baselines`` (dictionary and dense linkers, the
lexical KBQA baseline), ``metrics`` (precision, recall, F1 and more), ``link_report`` (every linking
method on one split) and ``kgclue_report`` (KgCLUE's methods on every split). The engines never
import this package; ``simlink evaluate`` drives it.
"""
