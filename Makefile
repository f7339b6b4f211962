# dbre.rds — one command to test, one to see it work. Run as root or as a user with sudo-free access to runuser.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt tests/requirements-dev.txt | cksum | cut -d' ' -f1)
COLLECTIONS := $(CURDIR)/.build
SANITY_ROOT := $(CURDIR)/.build/sanity/ansible_collections/dbre/rds
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_ROLES_PATH := $(CURDIR)/roles
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The newest Python here and the newest ansible PyPI serves for it: `make next-core` (part of `make test`).
PYTHON_NEXT ?= $(lastword $(sort $(wildcard /usr/bin/python3.13 /usr/local/bin/python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13)))
VENV_NEXT := .venv-next
STAMP_NEXT := $(VENV_NEXT)/.installed-$(shell cat requirements.txt tests/requirements-next.txt | cksum | cut -d' ' -f1)

.PHONY: help setup collection-link sanity-tree next-core sanity static units lab-tests integration molecule lint test demo docs lab-up lab-down docs-check iam-policies \
        build clean system-packages

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt tests/requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned requirements into $(VENV) (first run takes a few minutes)"
	@$(BIN)/pip install --quiet --requirement tests/requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@rm -f $(VENV)/.installed-* && touch $@

system-packages: ## Debian packages the lab and sanity need (PostgreSQL 15 and its headers, PgBouncer, shellcheck)
	@missing=""; \
	test -x /usr/lib/postgresql/15/bin/initdb || missing="$$missing postgresql-15"; \
	test -x /usr/sbin/pgbouncer || missing="$$missing pgbouncer"; \
	test -f /usr/include/postgresql/15/server/postgres.h || missing="$$missing postgresql-server-dev-15"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

setup: system-packages $(STAMP) collection-link ## Create .venv, install pinned requirements, link the collection

collection-link:
	@mkdir -p .build/ansible_collections/dbre
	@ln -sfn ../../.. .build/ansible_collections/dbre/rds

sanity-tree: setup
	@rm -rf .build/sanity && mkdir -p $(SANITY_ROOT)
	@git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C $(SANITY_ROOT)
	@cd $(SANITY_ROOT) && git init -q && git add -A
	@# the collections dbre.rds depends on, beside it where ansible-test's own virtual environments look for them
	@deps=$$($(BIN)/python -c 'import os, ansible_collections.amazon.aws as m; print(os.path.dirname(os.path.dirname(list(m.__path__)[0])))'); \
	  for ns in amazon community; do ln -sfn $$deps/$$ns .build/sanity/ansible_collections/$$ns; done

sanity: sanity-tree ## ansible-test sanity (offline get-pip stand-in, no ignore entries)
	@$(BIN)/python tests/tools/offline_get_pip.py
	cd $(SANITY_ROOT) && ansible-test sanity --venv --python 3.11 --color no

$(STAMP_NEXT): requirements.txt tests/requirements-next.txt
	@test -n "$(PYTHON_NEXT)" || { echo "next-core needs Python 3.13: install it or set PYTHON_NEXT=/path/to/python3.13"; exit 1; }
	@test -x $(VENV_NEXT)/bin/python || $(PYTHON_NEXT) -m venv $(VENV_NEXT)
	@echo "Installing the newest ansible for $(PYTHON_NEXT) into $(VENV_NEXT)"
	@$(VENV_NEXT)/bin/pip install --quiet --requirement tests/requirements-next.txt
	@rm -f $(VENV_NEXT)/.installed-* && touch $@

next-core: sanity-tree $(STAMP_NEXT) ## Units, validate-modules and import tests under the newest ansible-core (Python 3.13)
	@$(VENV_NEXT)/bin/python tests/tools/offline_get_pip.py
	@# the collections dbre.rds depends on, as the newest ansible ships them
	@deps=$$($(VENV_NEXT)/bin/python -c 'import os, ansible_collections.amazon.aws as m; print(os.path.dirname(os.path.dirname(list(m.__path__)[0])))'); \
	  for ns in amazon community; do ln -sfn $$deps/$$ns .build/sanity/ansible_collections/$$ns; done
	@echo "ansible-core $$($(VENV_NEXT)/bin/python -c 'import ansible; print(ansible.__version__)') on $$($(VENV_NEXT)/bin/python -V)"
	PATH=$(CURDIR)/$(VENV_NEXT)/bin:$$PATH $(VENV_NEXT)/bin/pytest -q tests/unit
	cd $(SANITY_ROOT) && PATH=$(CURDIR)/$(VENV_NEXT)/bin:$$PATH ansible-test sanity --venv --python 3.13 --color no \
	  --test validate-modules --test import

units: setup ## Unit tests of module_utils and modules
	$(BIN)/pytest -q tests/unit

lab-tests: setup ## The lab's own fidelity tests (moto + real PostgreSQL)
	$(BIN)/pytest -q -n 2 --dist loadfile tests/lab

integration: setup ## Modules, roles and playbooks against the lab
	$(BIN)/pytest -q -n 2 --dist loadfile tests/integration

molecule: setup ## Molecule scenarios in extensions/molecule, each against a lab of its own
	$(BIN)/python tests/tools/run_molecule.py

lint: setup ## ansible-lint with the production profile
	$(BIN)/ansible-lint --profile production

static: setup ## The checks that need no lab, in a row: unit, sanity, next ansible-core, lint, docs
	$(MAKE) --no-print-directory units
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory next-core
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory docs-check

test: setup ## Everything CI runs: the static checks beside the molecule scenarios, then lab and integration
	@# The static checks and the molecule scenarios run side by side: each keeps about one core busy, and neither
	@# measures time. Molecule's output (a line per scenario, a failed scenario's whole log) follows the checks'; a
	@# failure of either fails the target only once both have finished, so no lab is left running (after Ctrl-C too:
	@# the scenarios run on to their end and stop their labs).
	@$(BIN)/python tests/tools/run_molecule.py > .build/molecule-stage.log 2>&1 & molecule=$$!; \
	  $(MAKE) --no-print-directory static; static=$$?; echo "static checks: exit $$static after $$SECONDS s"; \
	  wait $$molecule; scenarios=$$?; cat .build/molecule-stage.log; echo "molecule: exit $$scenarios after $$SECONDS s"; \
	  test $$static -eq 0 && test $$scenarios -eq 0
	@# Then the lab and integration tests, which measure downtime and lag and so get both cores to themselves. Files
	@# go to the two workers in this order (--no-loadscope-reorder: xdist would otherwise put the files with the
	@# fewest tests last, which are the long ansible-driven ones, and leave one worker idle at the end).
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests/integration tests/lab

demo: setup ## The whole flow on the local lab, then a summary
	$(BIN)/python tests/tools/demo.py

ANTSIBULL_DOCS := antsibull-docs collection --use-current --output-format simplified-rst --no-add-antsibull-docs-version \
	--no-breadcrumbs --squash-hierarchy --fail-on-error

docs: setup ## Regenerate the module, plugin and role reference under docs/reference from their documentation
	@rm -rf docs/reference && mkdir -p docs/reference
	$(ANTSIBULL_DOCS) --dest-dir docs/reference dbre.rds

docs-check: setup ## Fail when docs/reference differs from what `make docs` generates
	@rm -rf .build/docs-check && mkdir -p .build/docs-check
	@$(ANTSIBULL_DOCS) --dest-dir .build/docs-check dbre.rds >/dev/null
	@diff -r docs/reference .build/docs-check || { echo "docs/reference is stale: run make docs and commit it"; exit 1; }

iam-policies: setup ## Regenerate docs/iam from every call the integration suite makes in the lab
	IAM_POLICIES_WRITE=1 $(BIN)/pytest -q -n 2 --dist loadfile tests/integration

lab-up: setup ## Start the local lab in the background (source .lab/env.sh afterwards)
	PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m dbre_rds_lab up

lab-down: ## Stop every lab process and remove its state
	@test -x $(BIN)/python && PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m dbre_rds_lab down || true

build: setup ## Build dbre-rds-<version>.tar.gz
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist

clean: lab-down ## Remove build output (keeps .venv)
	rm -rf .build .pytest_cache tests/output
