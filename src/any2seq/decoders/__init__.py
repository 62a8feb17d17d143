"""Decoders: tokens (RNN with optional attention, Transformer)."""
