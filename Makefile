# rmail — every target creates the virtualenv first (make install is idempotent).
# Variables given on the command line (DOMAIN, PATTERN, TARGET) reach recipes through the
# environment, so regex metacharacters and quotes in PATTERN need no escaping here.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
ARGS    ?=

.PHONY: install install-test run serve typecheck test client alias delalias listaliases diagnose bench clean

# install: what running rmail needs; install-test adds the test tools (make test uses it).
install: $(STAMP)
install-test: $(TSTAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e .
	touch $(STAMP)

$(TSTAMP): $(STAMP)
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $(TSTAMP)

run: install
	$(PYTHON) run.py $(ARGS)

serve: install
	$(PYTHON) run.py serve $(ARGS)

client: install
	$(PYTHON) -m rmail.client $(ARGS)

# typecheck: mypy with pyproject's [tool.mypy] (rmail/server/core, strict); make test runs it first,
# so a type error fails the build like a failing test.
typecheck: install-test
	$(PYTHON) -m mypy

test: install-test typecheck
	$(PYTHON) -m pytest $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

alias: install
	@test -n "$$DOMAIN" -a -n "$$PATTERN" -a -n "$$TARGET" || { echo 'usage: make alias DOMAIN=example.com PATTERN="sales-.*" TARGET=alice' >&2; exit 2; }
	@$(PYTHON) run.py alias add "$$DOMAIN" "$$PATTERN" "$$TARGET"

delalias: install
	@test -n "$$DOMAIN" -a -n "$$PATTERN" || { echo 'usage: make delalias DOMAIN=example.com PATTERN="sales-.*"' >&2; exit 2; }
	@$(PYTHON) run.py alias remove "$$DOMAIN" "$$PATTERN"

listaliases: install
	@test -n "$$DOMAIN" || { echo 'usage: make listaliases DOMAIN=example.com' >&2; exit 2; }
	@$(PYTHON) run.py alias list "$$DOMAIN"

diagnose: install
	$(PYTHON) run.py diagnose $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
