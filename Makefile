# Two commands for a fresh clone: `make run` ingests a real corpus and answers a query,
# `make test` runs the whole suite. Both create the virtual environment in .venv first.

PYTHON_SYSTEM ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
GRAPHMEM := $(VENV)/bin/graphmem

export DAGSTER_HOME := $(CURDIR)/.dagster_home
export GRAPHMEM_HOME ?= $(CURDIR)/.graphmem
export HF_HUB_OFFLINE := 1

# `make run DOCS=folder` ingests your own folder instead of the State of the Union addresses.
DOCS ?=
SOTU_SINCE ?= 2001
QUERY ?= What did the president propose for health care?

.PHONY: install run dev test bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test,demo]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

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

test: install
	$(VENV)/bin/pytest

bench: install
	$(PYTHON) benchmarks/ingest.py

clean:
	rm -rf $(DAGSTER_HOME) $(GRAPHMEM_HOME)
