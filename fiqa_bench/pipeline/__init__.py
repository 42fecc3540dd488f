"""The path of an image from its file to a quality score, through the cache.

``context``: where and how a command runs (:class:`~fiqa_bench.pipeline.context.RunContext`);
``paths``: where the data, the cache and model files are; ``stores``: the folders inside the cache;
``hashing``: content keys (each image file hashed once per run);
``cache``: the atomic, lock-protected keyed stores; ``chips``: how aligned chips are kept;
``embedding``: faces, chips and a recognition model's outputs per image;
``scoring``: a quality method's scores per image.
"""
