# The README's two commands: `make tables` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= mini
CORES  ?= all
STAMP  := $(VENV)/.installed
# Rules call `use-repro`; the venv's bin must be on PATH for Snakemake's shell commands.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: tables small figures compare paper-core test env clean-results help

help:
	@echo "make tables   - set up $(VENV) and run 'snakemake --cores $(CORES) tables' on the '$(PROFILE)' profile"
	@echo "make small    - the same on the 'small' profile (models that enhance; about 90 min on 2 cores)"
	@echo "make figures  - the same for every figure"
	@echo "make paper-core - Table 1 only: trains and scores its four systems (docs/compute-plan.md)"
	@echo "make test     - set up $(VENV) and run the test suite (CPU only)"
	@echo "variables: PROFILE=tiny|mini|small|gpu|urgent2025  CORES=N|all"

env: $(STAMP)

# torch is installed first, alone and pinned, so the CPU build is used and no resolver step
# can pull a CUDA wheel set for a package that merely depends on "torch".
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[metrics,test]'
	# Metric backends whose declared dependencies are harmful (torchaudio, transformers, an old
	# torch pin) but which run on what is already installed: installed without their dependencies.
	$(BIN)/python -m pip install -q --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0 nisqa==2.0.post2
	# The compiled CPU selective scan, built into the venv (fails the install if a compiler
	# exists but the build fails; without a compiler it says so and the torch scan is used).
	$(BIN)/python -m use_repro.models.scan_cpu --build
	touch $@

# --rerun-incomplete: after an interruption, `make tables` again redoes the jobs that were cut
# off (training resumes from its last checkpoint) instead of stopping to ask for the flag.
tables: $(STAMP)
	$(BIN)/snakemake tables --cores $(CORES) --rerun-incomplete --config profile=$(PROFILE)

# The `small` profile: the CPU run whose trained models are meant to enhance (issue 15).
small: $(STAMP)
	$(BIN)/snakemake tables --cores $(CORES) --rerun-incomplete --config profile=small

figures: $(STAMP)
	$(BIN)/snakemake figures --cores $(CORES) --rerun-incomplete --config profile=$(PROFILE)

compare: $(STAMP)
	$(BIN)/snakemake compare --cores $(CORES) --rerun-incomplete --config profile=$(PROFILE)

# Table 1 alone: its four systems (and the runs they start from) trained, enhanced and scored.
paper-core: $(STAMP)
	$(BIN)/snakemake paper_core --cores $(CORES) --rerun-incomplete --config profile=$(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/$(PROFILE) figures/$(PROFILE)
