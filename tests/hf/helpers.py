"""What the Hugging Face tests share besides fixtures."""
from __future__ import annotations

import torch


def hf_generate(model, tok, lines: list[str], max_new_tokens: int, **options) -> list[list[int]]:
    """HF generate's ids after the decoder start, up to (without) the first </s>, in batches of 50."""
    out = []
    with torch.no_grad():
        for i in range(0, len(lines), 50):
            batch = tok(lines[i: i + 50], padding=True, return_tensors="pt")
            rows = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, **options).tolist()
            for row in rows:
                row = row[1:]
                out.append(row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row)
    return out
