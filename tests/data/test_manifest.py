"""Manifests of a person's own files: the field's layouts, paths relative to the manifest, errors
naming the manifest's line; ``any2seq evaluate --src MANIFEST`` on a speech model scores WER/CER."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from any2seq.cli import main
from any2seq.data.manifest import read_manifest, references
from any2seq.errors import UserError

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def test_the_fields_layouts(tmp_path):
    (tmp_path / "m").mkdir()
    layouts = {
        "list.txt": "a.wav\nsub/b.flac\n/abs/c.wav\n",
        "plain.tsv": "a.wav\tone two\nsub/b.flac\tthree\n/abs/c.wav\t\n",
        "common_voice.tsv": "client_id\tpath\tsentence\tup_votes\nx\ta.wav\tone two\t2\ny\tsub/b.flac\tthree\t0\n"
                            "z\t/abs/c.wav\t\t1\n",
        "nemo.jsonl": "\n".join(json.dumps(d) for d in [{"audio_filepath": "a.wav", "text": "one two", "duration": 1},
                                                         {"audio_filepath": "sub/b.flac", "text": "three"},
                                                         {"audio_filepath": "/abs/c.wav", "text": ""}]) + "\n",
        "hf.jsonl": "\n".join(json.dumps(d) for d in [{"file_name": "a.wav", "transcription": "one two"},
                                                       {"file_name": "sub/b.flac", "transcription": "three"},
                                                       {"file_name": "/abs/c.wav", "transcription": ""}]),
    }
    for name, text in layouts.items():
        (tmp_path / "m" / name).write_text(text)
        entries = read_manifest(tmp_path / "m" / name)
        assert [e.path for e in entries] == [tmp_path / "m" / "a.wav", tmp_path / "m" / "sub" / "b.flac",
                                             Path("/abs/c.wav")], name
        assert [e.line for e in entries] == ([2, 3, 4] if name == "common_voice.tsv" else [1, 2, 3]), name
        if name != "list.txt":
            assert references(Path(name), entries, None) == ["one two", "three", ""], name
    fairseq = tmp_path / "m" / "train.tsv"  # wav2vec: a root folder, then path and frame count
    fairseq.write_text("../clips\nx/a.wav\t16000\nb.wav\t8000\n")
    assert [e.path for e in read_manifest(fairseq)] == [tmp_path / "m" / "../clips/x/a.wav",
                                                        tmp_path / "m" / "../clips/b.wav"]


@pytest.mark.parametrize("name, text, says", [
    ("m.txt", "", "m.txt: empty manifest"),
    ("m.txt", "a.wav\n\nb.wav\n", "m.txt:2: empty line"),
    ("m.jsonl", '{"audio_filepath": "a.wav"}\n{"audio_filepath": \n', "m.jsonl:2: not valid JSON"),
    ("m.jsonl", '{"audio_filepath": "a.wav"}\n[1, 2]\n', "m.jsonl:2: a JSON object"),
    ("m.jsonl", '{"audio_filepath": "a.wav"}\n{"text": "one"}\n', "m.jsonl:2: no path"),
    ("m.jsonl", '{"audio_filepath": "a.wav", "text": 3}\n', "m.jsonl:1: 'text' must be a string"),
    ("m.jsonl", "[" * 100000 + "\n", "m.jsonl:1: not valid JSON"),
    ("m.tsv", "client_id\tpath\tsentence\nx\ta.wav\tone\ny\n", "m.tsv:3: 1 tab-separated fields, no path"),
    ("m.tsv", "path\tsentence\n", "m.tsv: no files listed"),
    ("m.txt", "a\0b.wav\n", "m.txt:1: a NUL character"),
])
def test_malformed_manifests_name_the_line(tmp_path, name, text, says):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=f"^{tmp_path}/{says}"):
        read_manifest(tmp_path / name)


def test_references_must_line_up(tmp_path):
    (tmp_path / "m.txt").write_text("a.wav\nb.wav\n")
    (tmp_path / "ref.txt").write_text("one\n")
    entries = read_manifest(tmp_path / "m.txt")
    with pytest.raises(UserError, match="--ref .*ref.txt: 1 lines, but the manifest .* lists 2 files"):
        references(tmp_path / "m.txt", entries, tmp_path / "ref.txt")
    with pytest.raises(UserError, match="m.txt:1: no transcript in the manifest; give --ref"):
        references(tmp_path / "m.txt", entries, None)


needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"the Free Spoken Digit Dataset is not at {FSDD}")
CLIPS = [f"{d}_{s}_21.wav" for s in ("george", "jackson") for d in range(10)]


def my_recordings(folder: Path) -> list[str]:
    """Twenty FSDD recordings as a person's phone keeps them: 48 kHz stereo FLAC, in ``folder/clips``."""
    (folder / "clips").mkdir(parents=True)
    for name in CLIPS:
        audio, rate = soundfile.read(FSDD / name)
        buffer = io.BytesIO()
        soundfile.write(buffer, np.stack([soxr.resample(audio, rate, 48000)] * 2, 1) * 0.9, 48000, format="FLAC")
        (folder / "clips" / name.replace(".wav", ".flac")).write_bytes(buffer.getvalue())
    return [WORDS[int(name[0])] for name in CLIPS]


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@needs_fsdd
def test_evaluate_a_speech_model_on_my_own_recordings(speech_model, tmp_path, capsys, monkeypatch):
    words = my_recordings(tmp_path / "me")
    (tmp_path / "me" / "paths.txt").write_text("".join(f"clips/{n.replace('.wav', '.flac')}\n" for n in CLIPS))
    (tmp_path / "me" / "transcripts.txt").write_text("".join(w + "\n" for w in words))
    (tmp_path / "me" / "clips.tsv").write_text("path\tsentence\n" + "".join(
        f"clips/{n.replace('.wav', '.flac')}\t{w}\n" for n, w in zip(CLIPS, words)))
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the manifest's folder, not here
    code, out, err = run(capsys, "evaluate", "--model", speech_model, "--src", "me/paths.txt",
                         "--ref", "me/transcripts.txt", "--json", "--beam", "1", "--hyps", "hyps.txt")
    assert code == 0, err
    metrics = json.loads(out)
    assert set(metrics) == {"wer", "cer"} and "bleu" not in out  # the task's metrics, not BLEU on path names
    hyps = (tmp_path / "hyps.txt").read_text().splitlines()
    wrong = sum(h != w for h, w in zip(hyps, words))
    assert metrics["wer"] == pytest.approx(100 * wrong / len(words), abs=0.01)
    assert wrong < 0.75 * len(words)  # it hears digits: chance would get 90 % wrong
    code, out, err = run(capsys, "evaluate", "--model", speech_model, "--src", "me/clips.tsv", "--beam", "1")
    assert code == 0, err
    assert out.splitlines() == [f"wer {metrics['wer']:.2f}", f"cer {metrics['cer']:.2f}"]


@needs_fsdd
@pytest.mark.parametrize("manifest, says", [
    ("clips/0_george_21.flac\nclips/nowhere.wav\n", "m.txt:2: .*clips/nowhere.wav: no such WAV file"),
    ("clips/0_george_21.flac\nclips\n", "m.txt:2: .*clips: cannot read audio file"),
    ("m.txt\n", "m.txt:1: .*m.txt: not a readable WAV, FLAC or OGG file"),
])
def test_bad_entries_name_the_manifest_line(speech_model, tmp_path, capsys, manifest, says):
    my_recordings(tmp_path)
    (tmp_path / "m.txt").write_text(manifest)
    (tmp_path / "ref.txt").write_text("zero\n" * manifest.count("\n"))
    code, out, err = run(capsys, "evaluate", "--model", speech_model, "--src", tmp_path / "m.txt",
                         "--ref", tmp_path / "ref.txt")
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"any2seq evaluate: error: {tmp_path}/") and re.search(says, err), err
