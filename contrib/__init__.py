"""Backbones submitted to the benchmark from outside the ``backbones`` package.

Each module registers its class(es) in mmengine's root ``MODELS`` and its zoo entries when it is
imported; its configs import it through ``custom_imports`` (``tools/make_configs.py --import
contrib.<module>``), and ``backbones.zoo.load_contrib`` imports them all for the tools that know
models by name only (the leaderboard). See docs/add_backbone.md.
"""
