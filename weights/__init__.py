"""Training, evaluation and data code for the default model shipped in this folder (not installed)."""
