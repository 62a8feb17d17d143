"""Exporting trained models to other inference engines: CTranslate2 (``ct2.py``)."""
from any2seq.export.ct2 import export_ct2, translate_ct2

__all__ = ["export_ct2", "translate_ct2"]
