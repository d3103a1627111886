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

example: $(VENV)/.installed
	$(BIN)/caduceus embed examples/example.fa --regions examples/genes.bed --bin 128 --pool mean \
		-o example.h5 --force
	# all 300 SNVs through stdin, masked LLR at the model's own window (1,024 bp): seconds on a laptop CPU
	cat examples/example.vcf | $(BIN)/caduceus score-variants - --fasta examples/example.fa \
		--probs -o example.scored.vcf.gz --write-index --force
	@echo "wrote example.h5 and example.scored.vcf.gz (+ .tbi)"

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
