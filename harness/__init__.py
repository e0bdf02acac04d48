"""The benchmark harness around the ``backbones`` package: the task table (:mod:`.tasks`),
config generation, complexity counting, running configs (:mod:`.running`), result records, the
leaderboard, contract checks for submitted backbones, checkpoint converters and toy data.

Import direction: ``harness`` imports ``backbones``, never the other way round; configs import
only ``backbones``.
"""
