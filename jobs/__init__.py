"""Bulk work over files: score pairs, rank a corpus for many queries, link many texts.

``bulk`` (the three jobs, callable from Python), ``rows`` (input files: TSV, JSONL, Parquet, bad
rows named by line), ``tasks`` (the per-batch work of each job), ``runner`` (here in threads, or
on Ray Data) and ``output`` (resumable, in input order). Jobs call the engines in ``models``, as
the server does, and never import ``service``.
"""
