"""The phases of one run, one module per group, driven in order by :func:`harness.run.run_test` (its module
docstring lists them): ``state`` (what a run has while it runs), ``setup`` (2-4), ``observers`` (the pollers of
5), ``workload`` (6 and 9's final reads), ``heal`` (7), ``settle`` (8 and 9's convergence), ``collect`` (a step of
10), ``results`` (11-13, and `harness analyze`). Each acquires through the run's undo stack (harness.undo) and
leaves no other trace of what it acquired."""
