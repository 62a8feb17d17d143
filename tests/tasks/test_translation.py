"""Translation is a text-output task like the others: its validation decodes and scores the valid
split exactly as ``evaluate`` does, and its loss leaves out the pairs whose source is empty."""
from __future__ import annotations

import pytest
import torch

from any2seq.config import config_from_dict
from any2seq.data.batching import collate_items
from any2seq.inference import SearchOptions
from any2seq.tasks import get_task
from any2seq.tasks.base import token_items

PAIRS = [("Ein Hund läuft.", "A dog runs."), ("Eine Frau singt in einer Kirche.", "A woman sings in a church."),
         ("", "Nothing at all."), ("Zwei Männer spielen im Park Fußball.", "Two men play football in the park."),
         ("Ein Kind lacht.", "A child laughs.")]
SMALL = {"d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """(task, cfg, toks, model): an untrained tiny model on five pairs (one with an empty source)."""
    root = tmp_path_factory.mktemp("corpus")
    for split in ("train", "val"):
        for side, lang in ((0, "de"), (1, "en")):
            (root / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in PAIRS), encoding="utf-8")
    cfg = config_from_dict({"data": {"root": str(root)}, "tokenizer": {"vocab_size": 60},
                            "model": {"encoder": {"kind": "transformer", **SMALL},
                                      "decoder": {"kind": "transformer", **SMALL}}})
    task = get_task("translation")
    toks = task.prepare(cfg, tmp_path_factory.mktemp("run"), reuse=False)
    torch.manual_seed(0)
    return task, cfg, toks, task.build_model(cfg, toks).eval()


def validate(task, cfg, toks, model, decode: bool) -> dict:
    with torch.no_grad():  # as the training loop calls it
        return task.make_validate(model, toks, cfg, "cpu", decode)()


def test_validation_scores_what_evaluate_scores_on_the_valid_split(untrained):
    task, cfg, toks, model = untrained
    metrics = validate(task, cfg, toks, model, decode=True)
    greedy = SearchOptions(beam=1, max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b)
    scores, hyps = task.evaluate(model, toks, cfg, "valid", greedy)
    assert list(metrics) == ["loss", "bleu", "chrf", "signature"]
    assert {k: v for k, v in metrics.items() if k != "loss"} == scores
    assert len(hyps) == len(PAIRS) and hyps[2] == ""  # the empty source is scored, as an empty output


def test_the_validation_loss_is_the_loss_of_the_pairs_with_a_source(untrained):
    task, cfg, toks, model = untrained
    src = token_items(toks.src, [p[0] for p in PAIRS])
    tgt = token_items(toks.tgt, [p[1] for p in PAIRS])
    with torch.no_grad():
        loss, n = model.loss(collate_items(src, tgt, [0, 1, 3, 4]))
    metrics = validate(task, cfg, toks, model, decode=False)
    assert metrics == {"loss": pytest.approx(float(loss) / n, rel=1e-6)}
