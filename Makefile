# Two commands for a fresh clone: `make run` ingests a real corpus and answers a query,
# `make test` runs the whole suite. Both create the virtual environment in .venv first.

PYTHON_SYSTEM ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
GRAPHMEM := $(VENV)/bin/graphmem

export DAGSTER_HOME := $(CURDIR)/.dagster_home
export GRAPHMEM_HOME ?= $(CURDIR)/.graphmem
export HF_HUB_OFFLINE := 1

# GRAPHMEM_DAGSTER_INSTANCE=postgres makes a new DAGSTER_HOME get dagster.postgres.yaml (runs, event
# logs and schedules in PostgreSQL, connection from the DAGSTER_PG_* variables) instead of dagster.yaml.
INSTANCE_KIND := $(or $(strip $(GRAPHMEM_DAGSTER_INSTANCE)),sqlite)
ifeq ($(INSTANCE_KIND),sqlite)
INSTANCE_FILE := dagster.yaml
else ifeq ($(INSTANCE_KIND),postgres)
INSTANCE_FILE := dagster.postgres.yaml
else
$(error GRAPHMEM_DAGSTER_INSTANCE=$(INSTANCE_KIND) is not a Dagster instance kind: use sqlite or postgres)
endif

# `make run DOCS=folder` ingests your own folder instead of the State of the Union addresses.
DOCS ?=
SOTU_SINCE ?= 2001
QUERY ?= What did the president propose for health care?

SERVICES := scripts/services/services

.PHONY: install run dev test bench clean services-start services-stop services-status FORCE

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test,demo]'
	touch $@

install: $(VENV)/.installed

# Checked on every run so that a kind change is reported: an existing instance file is kept as it
# is, with a message when it is of the other kind or differs from $(INSTANCE_FILE).
$(DAGSTER_HOME)/dagster.yaml: $(INSTANCE_FILE) FORCE
	@mkdir -p $(DAGSTER_HOME)
	@if [ ! -f $@ ]; then \
		cp $(INSTANCE_FILE) $@ && echo "created $@ from $(INSTANCE_FILE)"; \
	else \
		existing=sqlite; \
		if grep -Eq 'dagster_postgres|^ +postgres:' $@; then existing=postgres; fi; \
		if [ "$$existing" != "$(INSTANCE_KIND)" ]; then \
			echo "using the existing $$existing instance $@ although GRAPHMEM_DAGSTER_INSTANCE selects $(INSTANCE_KIND): delete it to create one from $(INSTANCE_FILE)"; \
		elif ! cmp -s $(INSTANCE_FILE) $@; then \
			echo "using the existing $@, which differs from $(INSTANCE_FILE): delete it to take the project's settings"; \
		fi; \
	fi

FORCE:

run: install $(DAGSTER_HOME)/dagster.yaml
ifeq ($(strip $(DOCS)),)
	$(PYTHON) scripts/export_sotu.py --since $(SOTU_SINCE) --output $(GRAPHMEM_HOME)/corpora/sotu
	$(GRAPHMEM) ingest $(GRAPHMEM_HOME)/corpora/sotu
else
	$(GRAPHMEM) ingest $(DOCS)
endif
	$(GRAPHMEM) stats
	$(GRAPHMEM) query "$(QUERY)"

# The Dagster UI with the asset graph, partitions, checks and the inbox sensor.
dev: install $(DAGSTER_HOME)/dagster.yaml
	mkdir -p "$${GRAPHMEM_INBOX:-$(GRAPHMEM_HOME)/inbox}"
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1

# Installs Chromium for the browser tests, then starts Neo4j, Kafka, Redis and PostgreSQL on
# 127.0.0.1 (installing what is missing), runs the suite against them and stops them again, also
# when tests fail; exits with pytest's status.
test: install
	scripts/services/chromium.sh install
	scripts/services/with-services $(VENV)/bin/pytest

# The same services for manual use; ports and passwords come from the environment (README).
services-start:
	$(SERVICES) start

services-stop:
	$(SERVICES) stop

services-status:
	$(SERVICES) status

bench: install
	$(PYTHON) benchmarks/ingest.py

clean:
	rm -rf $(DAGSTER_HOME) $(GRAPHMEM_HOME)
