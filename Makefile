# mailstack: `make run` starts the lab server, `make test` runs the whole suite.
# Both create .venv (and install the project into it) when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.mailstack-installed
SOURCES = setup.cfg pyproject.toml $(shell find mailstack twisted -name '*.py' 2>/dev/null)
TRIAL_JOBS ?= 2

.PHONY: run test check fuzz interop install bench clean deps

# A normal (non-editable) install, so the twistd plugin lands in site-packages'
# twisted/plugins/ the way users get it. Re-installed when a source file changes.
$(STAMP): $(SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailstack needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check .
	@touch $@

install: $(STAMP)

# The development tools (requirements-dev.txt: mypy for check; Selenium and the
# OpenAPI validator for test), installed into .venv once (and when that changes).
# Defined before the rules that name it: make expands a rule's prerequisites
# when it reads the rule.
MYPY_STAMP = $(VENV)/.mypy-installed

run: $(STAMP)
	$(BIN)/twistd --nodaemon --pidfile= mailstack --config etc/mailstack.toml

# The development tools too: the browser tests need Selenium (requirements-dev.txt).
test: $(STAMP) $(MYPY_STAMP)
	$(BIN)/python -m twisted.trial --jobs=$(TRIAL_JOBS) tests

# The fast loop for every edit: the unit tests that open no socket and start no
# process (everything but tests/e2e/ and the modules listed here), well under a
# minute. `make test` runs these and the rest.
CHECK_SKIP = test_bench test_service test_relay_queue test_tls test_plugin test_testing \
	test_lab_guide
CHECK_MODULES = $(filter-out $(addprefix tests.,$(CHECK_SKIP)), \
	$(patsubst tests/%.py,tests.%,$(wildcard tests/test_*.py)))
$(MYPY_STAMP): requirements-dev.txt | $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

check: $(STAMP) $(MYPY_STAMP)
	MAILSTACK_CHECK_ONLY=1 $(BIN)/python -m twisted.trial --jobs=$(TRIAL_JOBS) $(CHECK_MODULES)
	$(BIN)/mypy --config-file mypy.ini

# Benchmarks side by side with Dovecot (IMAP, POP3) and aiosmtpd (SMTP):
# bench/README.md. aiosmtpd goes into bench's own venv, not the project's.
# Options: make bench BENCH_ARGS="--only imap --json bench.json"
BENCH_VENV  = bench/.venv
BENCH_STAMP = $(BENCH_VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): bench/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.run --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

# The seeded mutation fuzz tests at length (a short run is part of make test).
# Options: make fuzz FUZZ_ROUNDS=1000000 FUZZ_SEED=7
FUZZ_ROUNDS ?= 200000
FUZZ_SEED   ?= $(shell date +%s)
fuzz: $(STAMP)
	MAILSTACK_FUZZ_ROUNDS=$(FUZZ_ROUNDS) MAILSTACK_FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/python -m twisted.trial tests.test_framing.FramingFuzzTests tests.test_dotstuff.DotStuffFuzzTests
	@echo "fuzz: seed $(FUZZ_SEED), $(FUZZ_ROUNDS) rounds per fuzz test"

# The differential harness at length (tests/differential/, docs/imap.md
# "Differences from Dovecot"): every session script over the representative
# corpus and DIFF_MESSAGES generated messages, against a private Dovecot
# (`make deps` installs it; the test is skipped without it). A short run is
# part of make test. Options: make interop DIFF_MESSAGES=1000 DIFF_SEED=7
DIFF_MESSAGES ?= 200
DIFF_SEED     ?= 1
interop: $(STAMP)
	MAILSTACK_DIFFERENTIAL_GENERATED=$(DIFF_MESSAGES) MAILSTACK_DIFFERENTIAL_SEED=$(DIFF_SEED) \
	  $(BIN)/python -m twisted.trial tests.e2e.test_differential
	@echo "interop: seed $(DIFF_SEED), $(DIFF_MESSAGES) generated messages"

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp*

# Debian packages for the build (make, python3-venv) and the interoperability
# tests (Dovecot, swaks, fetchmail, mbsync, offlineimap): .ci/debian-packages.
# As root with apt-get, installs the missing ones (.ci/run does this before the
# tests); Dovecot's own service is not started (the tests run private ones).
deps:
	@if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "deps: not root or no apt-get; not installing .ci/debian-packages"; exit 0; fi; \
	missing=$$(for p in $$(cat .ci/debian-packages); do \
	  dpkg-query -W -f='$${db:Status-Status}\n' "$$p" 2>/dev/null | grep -qx installed || echo "$$p"; \
	done); \
	if [ -z "$$missing" ]; then echo "deps: .ci/debian-packages all installed"; exit 0; fi; \
	echo "deps: installing" $$missing; \
	policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
	  printf '#!/bin/sh\n# mailstack make deps: no service starts during install\nexit 101\n' > $$policy; \
	  chmod 755 $$policy; fi; \
	status=0; \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends $$missing; } || status=$$?; \
	if [ -n "$$policy" ]; then rm -f $$policy; fi; \
	exit $$status
