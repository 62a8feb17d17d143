"""The run directory: a mistake in the data leaves nothing behind, and a retry simply works."""
import pytest

from any2seq.errors import UserError

from .helpers import train_here, write_config, write_corpus


def test_a_data_error_writes_nothing_and_the_fixed_retry_trains(tmp_path):
    data = write_corpus(tmp_path / "data")
    (data / "val.en").write_text("one line too few\n", encoding="utf-8")
    config, out = write_config(tmp_path / "c.yaml", data, max_steps=2), tmp_path / "run"
    with pytest.raises(UserError, match=r"val\.(de|en)"):
        train_here(config, out)
    assert not out.exists() or not any(out.iterdir())  # no config.yaml, no tokenizer: no trace
    write_corpus(tmp_path / "data")  # fix the data, try again: no --resume, no cleanup by hand
    assert train_here(config, out)["step"] == 2


def test_a_fresh_run_retrains_the_tokenizer_a_failed_attempt_left(tmp_path):
    data = write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    out.mkdir()
    (out / "spm.model").write_bytes(b"left by an earlier attempt, not a sentencepiece model")
    state = train_here(write_config(tmp_path / "c.yaml", data, max_steps=2), out)
    assert state["step"] == 2 and (out / "spm.model").read_bytes().startswith(b"\n")  # a real model now
