# The README's two commands: `make tables` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= mini
CORES  ?= all
STAMP  := $(VENV)/.installed
# Rules call `use-repro`; the venv's bin must be on PATH for Snakemake's shell commands.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: tables small figures compare paper-core weights test env clean-results help

help:
	@echo "make tables   - set up $(VENV), fetch NISQA's official weights where it can, and run"
	@echo "                'snakemake --cores $(CORES) tables' on the '$(PROFILE)' profile"
	@echo "make small    - the same on the 'small' profile (models that enhance; about 90 min on 2 cores)"
	@echo "make figures  - the same for every figure"
	@echo "make paper-core - Table 1 only: trains and scores its four systems (docs/compute-plan.md)"
	@echo "make weights  - fetch NISQA's official weights into the profile's weights_dir (sha256-pinned)"
	@echo "make test     - set up $(VENV) and run the test suite (CPU only)"
	@echo "variables: PROFILE=tiny|mini|small|gpu|urgent2025  CORES=N|all"

env: $(STAMP)

# The package asks only for torch>=2.4; the torch of the project's CPU runs is pinned here, in
# CONSTRAINTS. torch is installed first, alone, so no resolver step can pull another build for a
# package that merely depends on "torch", and every later step keeps to the same constraint.
CONSTRAINTS ?= constraints-cpu.txt
PIP = $(BIN)/python -m pip install -q -c $(CONSTRAINTS)
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(PIP) torch
	$(PIP) -e '.[metrics,test]'
	# Metric backends whose declared dependencies are harmful (torchaudio, transformers, an old
	# torch pin) but which run on what is already installed: installed without their dependencies.
	$(PIP) --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0 nisqa==2.0.post2
	# The compiled CPU selective scan, built into the venv (fails the install if a compiler
	# exists but the build fails; without a compiler it says so and the torch scan is used).
	$(BIN)/python -m use_repro.models.scan_cpu --build
	touch $@

# NISQA's official weights: no package on the registries ships them, and the committed tables
# were made with them. Before a run they are fetched into the profile's weights_dir, checked
# against their pinned sha256 (`use-repro weights ensure`); where that cannot be done (offline, a
# proxy, ...) one line says so before the run and again after it, with the command that adds
# them, and the run goes on with NISQA n/a. It never fails the build. NISQA_URL: a mirror of the
# same file (the sha256 check still applies).
NISQA_URL ?=
SNAKEMAKE ?= $(BIN)/snakemake
nisqa = $(BIN)/use-repro weights --config $(1) ensure nisqa $(if $(NISQA_URL),--url $(NISQA_URL)) \
	--fix "make weights PROFILE=$(1)"

# $(call dag,PROFILE,TARGET): the NISQA line, the run, the line again if the weights are still
# missing, and the run's exit status.
# --rerun-incomplete: after an interruption, `make tables` again redoes the jobs that were cut
# off (training resumes from its last checkpoint) instead of stopping to ask for the flag.
define dag
	-@$(call nisqa,$(1))
	$(SNAKEMAKE) $(2) --cores $(CORES) --rerun-incomplete --config profile=$(1); status=$$?; $(call nisqa,$(1)) --no-fetch --quiet; exit $$status
endef

tables: $(STAMP)
	$(call dag,$(PROFILE),tables)

# The `small` profile: the CPU run whose trained models are meant to enhance (issue 15).
small: $(STAMP)
	$(call dag,small,tables)

figures: $(STAMP)
	$(call dag,$(PROFILE),figures)

compare: $(STAMP)
	$(call dag,$(PROFILE),compare)

# NISQA's official weights alone (fails, saying why, when they cannot be fetched; then
# `use-repro weights --config PROFILE add nisqa FILE` installs a copy you have).
weights: $(STAMP)
	$(BIN)/use-repro weights --config $(PROFILE) fetch nisqa $(if $(NISQA_URL),--url $(NISQA_URL))

# Table 1 alone: its four systems (and the runs they start from) trained, enhanced and scored.
paper-core: $(STAMP)
	$(call dag,$(PROFILE),paper_core)

# ruff first: a lint finding fails in seconds, before the suite's minutes ([tool.ruff] in pyproject.toml)
test: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/$(PROFILE) figures/$(PROFILE)
