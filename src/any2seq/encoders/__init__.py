"""Encoders: one file per modality front end."""
