"""Pipelines: one module per job, each a public function that the commands, the Python API, the
benchmarks and the workflows all call. A pipeline takes opened resources (model engine, FASTA,
output file) and returns its statistics; opening, option checks and output naming stay in the
commands."""
