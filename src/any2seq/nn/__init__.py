"""Shared building blocks: attention, embeddings with positions, Transformer layers."""
