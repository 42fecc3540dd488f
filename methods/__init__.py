"""FIQA methods, one file each; every module here is imported on first use.

To add a method, add ``methods/<name>.py`` that defines a
:class:`fiqa_bench.method.QualityMethod` subclass with a
:class:`fiqa_bench.method.MethodCard` and registers the class.  A complete
file (``tests/test_methods.py`` runs it, scores a folder and an LFW protocol
with it)::

    import numpy as np

    from fiqa_bench.method import METHODS, MethodCard, QualityMethod


    class RMSContrast(QualityMethod):
        \"\"\"Root-mean-square contrast of the grey chip: std(0.299 R + 0.587 G + 0.114 B) / 255.\"\"\"

        card = MethodCard(name="rms-contrast", paper="E. Peli, Contrast in complex images, JOSA A 7(10), 1990",
                          higher_is_better=True, needs="chips:dlib150", trained=False, weights="none")

        def native_score(self, chips: np.ndarray) -> np.ndarray:
            grey = chips.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            return grey.reshape(len(chips), -1).std(axis=1) / 255


    METHODS.add("rms-contrast", RMSContrast, description="RMS contrast of the grey chip")

``fiqa-bench score --method rms-contrast ...`` and ``fiqa-bench run --method
rms-contrast --protocol lfw-devtest`` then work.  Constructor parameters
become settings (``--set key=value``, converted to the annotated type);
an untrained method refuses ``--weights``.  A learned method subclasses
:class:`fiqa_bench.method.learned.LearnedQualityMethod` and names its
:class:`~fiqa_bench.method.learned.Objective` (the labels it regresses, or its own
batches and loss; ``cr_fiqa.py`` is the shortest example), then registers
with :func:`~fiqa_bench.method.learned.register_learned`: checkpoints, the shipped
cross-fitted models and ``fiqa-bench train --method <name>`` come with it.

Files whose name starts with ``_`` are not imported.
"""
