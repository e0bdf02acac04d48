# The two entry points of the README. Both set everything up first (idempotent).
.PHONY: install demo test lint

install:
	@bash tools/install.sh

demo: install
	@.venv/bin/python tools/run_toy.py

test: install
	@bash tools/run_tests.sh
