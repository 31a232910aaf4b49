"""What the tests and the benchmarks share, so that neither imports the other: a live server
(``server``), reference computations to check ours against (``reference``), and where the public
evaluation data is (``data``). Not part of the installed package; importable from the repository root."""
