"""FIQA methods, one file each; every module here is imported on first use.

To add a method, add ``methods/<name>.py`` that defines a
:class:`fiqa_bench.method.QualityMethod` subclass with a
:class:`fiqa_bench.method.MethodCard`, and registers a factory::

    from fiqa_bench.method import METHODS, MethodCard, QualityMethod

    class Sharpness(QualityMethod):
        \"\"\"Variance of the Laplacian of the grey chip (Pech-Pacheco et al., 2000).\"\"\"
        card = MethodCard(name="sharpness", paper="Pech-Pacheco et al., ICPR 2000",
                          higher_is_better=True, needs="chips:arcface112",
                          trained=False, weights="none")
        def native_score(self, chips):
            ...

    METHODS.add("sharpness", Sharpness, description="variance of the Laplacian")

Files whose name starts with ``_`` are not imported.
"""
