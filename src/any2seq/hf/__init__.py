"""Hugging Face models both ways: ``import_marian`` turns a local MarianMTModel directory into an
any2seq model directory, ``export`` writes an any2seq Transformer as a ``transformers`` model."""
