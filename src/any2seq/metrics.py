"""Evaluation metrics from the field's standard libraries: BLEU and chrF via sacreBLEU (Post, 2018)."""
from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF


def bleu_chrf(hyps: list[str], refs: list[str], lowercase: bool = False) -> dict:
    """Corpus BLEU and chrF on detokenized text, with sacreBLEU's reproducibility signatures."""
    bleu, chrf = BLEU(lowercase=lowercase), CHRF(lowercase=lowercase)
    b, c = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2),
            "signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}
