# The two entry points of the README. Both set everything up first (idempotent).
.PHONY: install demo test lint

install:
	@bash tools/install.sh

demo: install
	@.venv/bin/python tools/grid.py submit --launcher local --toy --models swin_t dwconv_t ddwconv_t idynamic_t
	@cat work_dirs/toy/leaderboard/leaderboard.md

test: install
	@bash tools/run_tests.sh
