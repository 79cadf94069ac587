# Two commands on a fresh Debian machine (root or sudo):
#   make run    set everything up and run the main job
#   make test   set everything up and run the tests
# Both are idempotent: they create .venv if it is missing and install only what is missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libegl1 libegl-mesa0 libgl1 libglx-mesa0 libgl1-mesa-dri libgbm1 \
	xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libxcb-cursor0 \
	libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 \
	libfontconfig1 libdbus-1-3

.PHONY: run test setup system-deps lint bench clean

LIVE := out/live/emulated-$(shell date +%Y%m%d-%H%M%S)
NO_DISPLAY := 3

# The studio on the embedded default (emulated 16-camera rig, procedural head, shipped weights);
# without a display, `tempeh studio` exits with status 3 and the headless live run takes over.
run: setup
	$(VENV)/bin/tempeh info
	@$(VENV)/bin/tempeh studio --source emulated --size 800x600; rc=$$?; \
	if [ $$rc -eq $(NO_DISPLAY) ]; then \
		echo "no display: running the headless live run instead (emulated rig -> meshes + preview video)"; \
		$(VENV)/bin/tempeh live --headless --source emulated --size 800x600 --seconds 10 --out $(LIVE); \
	else exit $$rc; fi

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

setup: system-deps $(VENV)/.stamp-installed

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $@

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
