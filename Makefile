# cnnzoo: two commands do all the set-up.
#   make demo   create .venv, install cnnzoo, obtain Fashion-MNIST, train the default model on this machine
#   make test   create/update .venv with the dev extras, obtain the real dataset, run the whole suite
#   make check  the fast tier for the edit-test loop: the suite without the tests marked slow (under a minute)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CNNZOO := $(VENV)/bin/cnnzoo
# pytest-xdist workers; the suite is sized for 2 cores (worksteal: an idle worker takes tests from a busy one,
# so the long tests at the end do not leave one core waiting)
JOBS   ?= 2

# axe-core (npm), the accessibility engine the studio's browser tests run in the page
AXE_VERSION := 4.14.1
AXE    := .cache/axe/node_modules/axe-core/axe.min.js

.PHONY: demo test check data browser install install-dev lint format clean help

help:
	@sed -n 's/^#   //p' Makefile

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "error: cnnzoo needs Python >= 3.10 (found $$($(PYTHON) --version)); set PYTHON=python3.x"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# PyTorch first, the build this machine needs (CPU-only wheels without an NVIDIA GPU), in one line of output.
$(VENV)/.torch-stamp: | $(PY)
	@sh scripts/install-torch.sh $(PY)
	@touch $@

$(VENV)/.runtime-stamp: pyproject.toml $(VENV)/.torch-stamp | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev-stamp: pyproject.toml $(VENV)/.torch-stamp | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.runtime-stamp

install: $(VENV)/.runtime-stamp
install-dev: $(VENV)/.dev-stamp

# Find Fashion-MNIST; if it is nowhere, install Debian's package when we are root with apt,
# otherwise download it into the user cache. Never runs sudo: it says what to run instead.
data: $(VENV)/.runtime-stamp
	@if $(CNNZOO) data >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: found and verified"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || \
	  $(CNNZOO) data --fetch; \
	else \
	  $(CNNZOO) data --fetch || { echo "could not download Fashion-MNIST: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu) or put the four files in \$$CNNZOO_DATA"; exit 1; }; \
	fi
	@$(CNNZOO) data

# The main job: the default model (lenet_bn) with the fast recipe on the CPU; leaves runs/lenet_bn-<time>/.
# Then the trained weights that ship with cnnzoo: where they are, and how to try one.
demo: data
	$(CNNZOO) train --device cpu
	@echo
	@$(CNNZOO) weights

# The studio's browser tests drive a real headless Chromium: as root with apt, install Debian's chromium and its
# driver when they are missing (in CI a missing browser fails those tests); otherwise they skip with one line.
# They also run axe-core's accessibility check in each page: npm installs it into .cache/axe.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "chromium: found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } || \
	  echo "could not install chromium: the studio's browser tests will skip (or fail in CI)"; \
	else \
	  echo "no chromium: the studio's browser tests will skip; run 'sudo apt-get install chromium chromium-driver'"; \
	fi
	@if [ -f $(AXE) ]; then \
	  echo "axe-core: found"; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm install -s --prefix .cache/axe --no-audit --no-fund --no-save axe-core@$(AXE_VERSION) >/dev/null && echo "axe-core: installed"; \
	else \
	  echo "no npm: the studio's accessibility check will skip (fail in CI); install nodejs and npm"; \
	fi

test: $(VENV)/.dev-stamp data browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(JOBS) --dist worksteal -q

check: $(VENV)/.dev-stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n $(JOBS) --dist worksteal -q -m "not slow and not killloop"

lint: $(VENV)/.dev-stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-stamp
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis .cache
