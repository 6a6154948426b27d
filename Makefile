# Two commands for a newcomer: `make run` (set up and serve the dashboard) and `make test`.
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 /root/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite runs in one process per core (pytest-xdist; each has its own test database and Redis database).
TEST_PROCESSES ?= auto

.PHONY: run test setup lint browser-deps

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is needed (none found on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium; install it when we can (root on Debian), else they skip. The emoji font
# too: without it headless Chromium draws the dashboard's emoji as missing-glyph boxes in the screenshots.
EMOJI_FONT := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
browser-deps:
	@{ test -x /usr/bin/chromium && test -f $(EMOJI_FONT); } || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			fonts-noto-color-emoji >/dev/null) \
		|| echo "chromium or its emoji font not installed: browser tests may be skipped or draw emoji as boxes"; }

test: setup browser-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
