"""FIQA methods, one file (or one package) each; the method registry imports every module here on first use.

To add a method, add ``methods/<name>.py`` that defines a
:class:`fiqa_bench.method.QualityMethod` subclass with a
:class:`fiqa_bench.method.MethodCard` and registers the class in
:data:`fiqa_bench.method.METHODS`.  The README's "A method" recipe is a
complete file (``tests/test_recipes.py`` runs it as written, scores a folder
and runs an LFW protocol with it).  A learned method subclasses
:class:`fiqa_bench.method.learned.LearnedQualityMethod` and names its
:class:`~fiqa_bench.method.learned.Objective` (the labels it regresses, or
its own batches and loss; ``cr_fiqa.py`` is the shortest example), then
registers with :func:`~fiqa_bench.method.learned.register_learned`:
checkpoints, the shipped cross-fitted models and ``fiqa-bench train
--method <name>`` come with it.

Files whose name starts with ``_`` are not imported.
"""
