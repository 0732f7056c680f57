# mailstack: `make run` starts the lab server, `make test` runs the whole suite.
# Both create .venv (and install the project into it) when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.mailstack-installed
SOURCES = setup.cfg pyproject.toml $(shell find mailstack twisted -name '*.py' 2>/dev/null)
TRIAL_JOBS ?= 2

.PHONY: run test install bench clean

# A normal (non-editable) install, so the twistd plugin lands in site-packages'
# twisted/plugins/ the way users get it. Re-installed when a source file changes.
$(STAMP): $(SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailstack needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check .
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/twistd --nodaemon --pidfile= mailstack --config etc/mailstack.toml

test: $(STAMP)
	$(BIN)/python -m twisted.trial --jobs=$(TRIAL_JOBS) tests

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp*
