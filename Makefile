# The two commands of the README: `make example` (the main job on the shipped model) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: example test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# pinned first: on the project's CI machines this is the local CPU build, elsewhere PyPI's
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# mamba-ssm's pure-PyTorch twins of its GPU kernels, for tests/test_kernel_glue.py. mamba-ssm is source-only on
# PyPI: built here against the installed torch without its CUDA extension (no nvcc, no GPU) and without its
# dependencies (they pull a huggingface_hub 2.x past our pin); einops and triton are what its reference
# modules import.
$(VENV)/.kernel-references: $(VENV)/.installed
	MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE $(BIN)/python -m pip install --quiet --no-build-isolation \
		--no-deps "mamba-ssm==2.3.2.post1" einops triton
	touch $@

example: $(VENV)/.installed
	$(BIN)/caduceus embed examples/example.fa --regions examples/genes.bed --bin 128 --pool mean \
		-o example.h5 --force
	# all 300 SNVs through stdin, masked LLR at the model's own window (1,024 bp): seconds on a laptop CPU
	cat examples/example.vcf | $(BIN)/caduceus score-variants - --fasta examples/example.fa \
		--probs -o example.scored.vcf.gz --write-index --force
	@echo "wrote example.h5 and example.scored.vcf.gz (+ .tbi)"

test: $(VENV)/.installed $(VENV)/.kernel-references
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
