"""The HTTP API on a tiny trained model: predictions, the model description, limits answered with a
4xx and a one-line JSON error (never a 500), dynamic batching; and the `plot` commands."""
from __future__ import annotations

import io
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import any2seq
from any2seq.cli import main
from any2seq.serve import Limits, create_app

LIMITS = Limits(max_body_bytes=20_000, max_inputs=8, max_len=64, max_input_chars=300, max_beam=6, timeout_s=60)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, LIMITS), raise_server_exceptions=False) as c:
        yield c


def predict(client, status=200, **body):
    response = client.post("/v1/predict", json=body)
    assert response.status_code == status, response.text
    return response.json()


def test_greedy_outputs_are_the_memorised_translations(client, trained):
    sources, targets = zip(*trained.pairs[:5])
    results = predict(client, inputs=list(sources), beam=1)["results"]
    assert [r["outputs"][0]["text"] for r in results] == list(targets)
    assert all(len(r["outputs"]) == 1 and isinstance(r["outputs"][0]["score"], float) for r in results)


def test_beam_search_returns_the_n_best_best_first(client, trained):
    source, target = trained.pairs[0]
    outputs = predict(client, inputs=[source], beam=4, n_best=3)["results"][0]["outputs"]
    assert len(outputs) == 3 and outputs[0]["text"] == target
    scores = [o["score"] for o in outputs]
    assert scores == sorted(scores, reverse=True)


def test_sampling_is_repeatable_by_seed(client, trained):
    body = dict(inputs=[trained.pairs[1][0]], sample=True, n_best=2, temperature=1.5, top_p=0.9, seed=7)
    first = predict(client, **body)["results"][0]["outputs"]
    assert len(first) == 2 and all(isinstance(o["text"], str) for o in first)
    assert predict(client, **body)["results"][0]["outputs"] == first


@pytest.mark.parametrize("run", ["trained", "trained_rnn"], ids=["transformer", "gru-bahdanau"])
def test_attention_weights_come_with_source_and_output_labels(run, request):
    run = request.getfixturevalue(run)
    predictor = any2seq.load(run.dir)
    with TestClient(create_app(predictor, LIMITS)) as c:
        assert c.get("/v1/model").json()["attention"] is True
        result = predict(c, inputs=[run.pairs[2][0], run.pairs[3][0]], beam=2, attention=True)["results"]
    for r in result:
        att = r["attention"]
        weights = np.array(att["weights"])
        layers, heads, T, S = weights.shape
        cfg = predictor.cfg.model.decoder
        assert (layers, heads) == ((cfg.layers, cfg.heads) if cfg.kind == "transformer" else (1, 1))
        assert att["tgt_labels"][-1] == "</s>" and len(att["tgt_labels"]) == T
        assert len(att["src_labels"]) == S and "".join(att["src_labels"]).replace("▁", " ").strip()
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-3)  # each row a distribution over the source
        expected = "".join(att["tgt_labels"][:-1]).replace("▁", " ").strip()
        assert expected == r["outputs"][0]["text"]


def test_model_health_docs_and_page(client):
    model = client.get("/v1/model").json()
    assert model["task"] == "translation" and model["input_kind"] == model["output_kind"] == "text"
    assert model["parameters"] > 0 and model["config"]["decoder"]["kind"] == "transformer"
    assert model["limits"]["max_inputs"] == LIMITS.max_inputs
    health = client.get("/health").json()
    assert health["status"] == "ok" and {"batches", "requests", "largest_batch"} <= set(health["batches"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="heatmap"' in page.text and 'id="layer"' in page.text
    assert client.get("/static/app.js").status_code == 200


JSON = {"content-type": "application/json"}
REFUSED = {
    "empty inputs": (dict(json={"inputs": []}), 400, "at least one input"),
    "too many inputs": (dict(json={"inputs": ["a"] * 9}), 400, "limit of 8"),
    "input too long": (dict(json={"inputs": ["a" * 301]}), 400, "limit of 300"),
    "max_len over the limit": (dict(json={"inputs": ["a"], "max_len": 65}), 400, "max_len: 65"),
    "max_len zero": (dict(json={"inputs": ["a"], "max_len": 0}), 400, "max_len"),
    "beam over the limit": (dict(json={"inputs": ["a"], "beam": 7}), 400, "beam: 7"),
    "n_best over the limit": (dict(json={"inputs": ["a"], "n_best": 7, "beam": 6}), 400, "n_best: 7"),
    "n_best over beam": (dict(json={"inputs": ["a"], "n_best": 3, "beam": 2}), 400, "more than beam 2"),
    "beam zero": (dict(json={"inputs": ["a"], "beam": 0}), 400, "beam"),
    "bad temperature": (dict(json={"inputs": ["a"], "sample": True, "temperature": 0}), 422, "temperature"),
    "tiny top_p": (dict(json={"inputs": ["a"], "sample": True, "top_p": 1e-300}), 422, "top_p"),
    "negative top_k": (dict(json={"inputs": ["a"], "sample": True, "top_k": -1}), 400, "top_k"),
    "huge seed": (dict(json={"inputs": ["a"], "sample": True, "seed": 2**64}), 422, "seed"),
    "NaN": (dict(content=b'{"inputs": ["a"], "temperature": NaN}', headers=JSON), 422, "temperature"),
    "unknown field": (dict(json={"inputs": ["a"], "beams": 2}), 422, "beams"),
    "inputs not a list": (dict(json={"inputs": "a"}), 422, "inputs"),
    "input not a string": (dict(json={"inputs": [1]}), 422, "inputs.0"),
    "body not an object": (dict(json=[1]), 422, "body"),
    "bad JSON": (dict(content=b'{"inputs": [', headers=JSON), 400, "not valid JSON"),
    "not UTF-8": (dict(content=b'{"inputs": ["\xff"]}', headers=JSON), 400, "not valid JSON"),
    "lone surrogate": (dict(content=b'{"inputs": ["\\ud800"]}', headers=JSON), 400, "not valid Unicode"),
    "body over the limit": (dict(content=b" " * 20_001, headers=JSON), 413, "limit of 20000 bytes"),
    "streamed body over the limit": (dict(content=iter([b" " * 15_000] * 2), headers=JSON), 413, "limit"),
    "bad content-length": (dict(content=b"{}", headers={**JSON, "content-length": "x"}), 413, "limit"),
    "multipart to a text model": (dict(files={"file": ("a.txt", b"Ein Hund")}), 400, "reads text"),
}


@pytest.mark.parametrize("request_kwargs, status, message", REFUSED.values(), ids=REFUSED.keys())
def test_every_limit_and_bad_request_is_a_4xx_with_a_one_line_json_error(client, request_kwargs, status, message):
    response = client.post("/v1/predict", **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_wrong_method_and_path_are_json_errors_too(client):
    for response in (client.get("/v1/predict"), client.get("/nope"), client.put("/health")):
        assert 400 <= response.status_code < 500 and response.json()["error"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_outputs(predictor, trained):
    sources = [de for de, _ in trained.pairs[:8]]
    with TestClient(create_app(predictor, LIMITS)) as c:
        solo = [predict(c, inputs=[s], beam=2, n_best=2)["results"][0] for s in sources]
        batcher = c.app.state.batcher
        # the batch closes when all eight have arrived, not after a time a loaded machine may overrun
        batcher.window_s, batcher.batch_inputs = 60.0, len(sources)
        got, errors = [None] * len(sources), []

        def one(i):
            try:
                got[i] = predict(c, inputs=[sources[i]], beam=2, n_best=2)["results"][0]
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sources))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        stats = c.get("/health").json()["batches"]
    assert stats["largest_batch"] > 1 and stats["requests"] == 2 * len(sources)
    assert stats["batches"] < 2 * len(sources)
    for alone, batched in zip(solo, got):
        assert [o["text"] for o in batched["outputs"]] == [o["text"] for o in alone["outputs"]]
        np.testing.assert_allclose([o["score"] for o in batched["outputs"]], [o["score"] for o in alone["outputs"]],
                                   atol=1e-4)


def test_concurrent_sampled_requests_repeat_their_solo_samples(predictor, trained):
    body = dict(inputs=[trained.pairs[4][0]], sample=True, n_best=2, seed=3)
    with TestClient(create_app(predictor, LIMITS)) as c:
        solo = predict(c, **body)["results"]
        c.app.state.batcher.window_s = 0.2
        got = [None] * 4
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, predict(c, **body)["results"]))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert got == [solo] * 4


def test_a_request_waiting_past_the_timeout_is_a_408(predictor, trained):
    with TestClient(create_app(predictor, Limits(timeout_s=0.05))) as c:
        c.app.state.batcher.window_s = 0.5  # the batch waits longer than the request may
        response = c.post("/v1/predict", json={"inputs": [trained.pairs[0][0]]})
    assert response.status_code == 408 and "limit of 0.05 s" in response.json()["error"]


def wav_bytes(seconds=0.5, rate=8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.sin(np.arange(int(seconds * rate)) / 5) * 8000).astype("<i2").tobytes())
    return buf.getvalue()


def test_an_audio_model_takes_multipart_uploads(tmp_path_factory, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    config = root / "configs" / "tiny" / "speech.yaml"
    monkeypatch.chdir(root)  # the tiny config names the data relative to the repository
    if not (root / "../shared/data/fsdd").resolve().is_dir():
        pytest.skip("no FSDD recordings in ../shared/data/fsdd for the tiny speech config")
    run = tmp_path_factory.mktemp("runs") / "speech"
    sets = ["train.max_steps=2", "train.valid_every=2", "data.n_train=8", "data.n_valid=2", "data.n_test=2"]
    overrides = [a for s in sets for a in ("--set", s)]
    assert main(["train", str(config), "--out", str(run), "--no-progress", *overrides]) == 0
    with TestClient(create_app(any2seq.load(run), LIMITS), raise_server_exceptions=False) as c:
        assert c.get("/v1/model").json()["input_kind"] == "audio"
        files = [("file", ("a.wav", wav_bytes(), "audio/wav")), ("file", ("b.wav", wav_bytes(0.3), "audio/wav"))]
        response = c.post("/v1/predict", files=files, data={"beam": "2", "n_best": "2", "attention": "true"})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 2 and all(len(r["outputs"]) == 2 for r in results)
        assert results[0]["attention"]["src_labels"][0] == "t0"
        refused = [
            (c.post("/v1/predict", files=[("file", ("a.wav", b"not a wav", "audio/wav"))]), 400, "upload 1"),
            (c.post("/v1/predict", json={"inputs": ["/etc/passwd"]}), 400, "upload files"),  # never a server path
            (c.post("/v1/predict", files=[("file", ("a.wav", wav_bytes(), "audio/wav"))], data={"beams": "2"}),
             422, "beams"),
            (c.post("/v1/predict", files=[("file", ("a.wav", wav_bytes(0.01), "audio/wav"))] * 9), 400, ""),
            (c.post("/v1/predict", files=[("file", ("a.wav", wav_bytes(2.0), "audio/wav"))] * 2), 413, "limit"),
        ]
    for response, status, message in refused:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_attention_writes_a_png_per_input(trained, tmp_path, capsys):
    code, out, err = cli(capsys, "plot", "attention", "--model", trained.dir, "--input", trained.pairs[0][0],
                         "--out", tmp_path / "one" / "attention.png")
    assert code == 0, err
    assert is_png(tmp_path / "one" / "attention.png") and out.split() == [str(tmp_path / "one" / "attention.png")]

    lines = tmp_path / "sentences.de"
    lines.write_text(f"{trained.pairs[1][0]}\n\n{trained.pairs[2][0]}\n", encoding="utf-8")
    code, out, err = cli(capsys, "plot", "attention", "--model", trained.dir, "--input", lines, "Ein Hund.",
                         "--layer", 0, "--head", 1, "--out", tmp_path / "many.png")
    assert code == 0, err
    written = [tmp_path / f"many-{i}.png" for i in (1, 2, 3)]
    assert out.split() == [str(p) for p in written] and all(is_png(p) for p in written)


def test_plot_curves_writes_a_png(trained, tmp_path, capsys):
    code, out, err = cli(capsys, "plot", "curves", trained.dir, "--out", tmp_path / "c.png")
    assert code == 0, err
    assert is_png(tmp_path / "c.png") and out.strip() == str(tmp_path / "c.png")


BAD_PLOTS = {
    "missing model": (["attention", "--model", "{tmp}/nope", "--input", "Ein Hund."], "no such model directory"),
    "not a model": (["attention", "--model", "{tmp}", "--input", "Ein Hund."], "model.json"),
    "layer out of range": (["attention", "--model", "{model}", "--input", "Ein Hund.", "--layer", "5"],
                           "--layer: 5 is out of range"),
    "negative head": (["attention", "--model", "{model}", "--input", "Ein Hund.", "--head", "-1"], "--head"),
    "empty input": (["attention", "--model", "{model}", "--input", ""], "input 1: the input is empty"),
    "no input": (["attention", "--model", "{model}"], "--input"),
    "out is a folder": (["attention", "--model", "{model}", "--input", "Ein Hund.", "--out", "{tmp}"],
                        "is a directory"),
    "missing run": (["curves", "{tmp}/nope"], "no such run directory"),
    "not a run": (["curves", "{tmp}"], "no metrics.jsonl"),
    "no plot named": ([], "PLOT"),
}


@pytest.mark.parametrize("args, message", BAD_PLOTS.values(), ids=BAD_PLOTS.keys())
def test_bad_plot_arguments_exit_2_with_one_line(args, message, trained, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, model=trained.dir) for a in args]
    capsys.readouterr()
    try:
        code = main(["plot", *args])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("any2seq plot") and message in err, err


def test_serve_refuses_bad_flags_and_a_missing_model_before_listening(tmp_path, capsys):
    for args, message in ((["--model", tmp_path / "nope"], "no such model directory"),
                          (["--model", tmp_path, "--timeout", "0"], "--timeout: must be positive"),
                          (["--model", tmp_path, "--max-inputs", "-1"], "--max-inputs: must be positive"),
                          (["--model", tmp_path, "--port", "70000"], "--port")):
        code, out, err = cli(capsys, "serve", *args)
        assert code == 2 and err.count("\n") == 1 and message in err, err


def test_help_shows_examples(capsys):
    for command in (["serve"], ["plot"], ["plot", "attention"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("attention", ["bahdanau", "dot", "general", "none"])
def test_rnn_cross_attention_maps_cover_every_output_step(attention):
    import torch

    from any2seq.decoders.rnn import RNNDecoder

    torch.manual_seed(0)
    decoder = RNNDecoder(vocab=11, cell="lstm", embed=6, hidden=8, layers=2, dropout=0.0, memory_dim=8,
                         attention=attention).eval()
    memory, lengths = torch.randn(2, 5, 8), torch.tensor([5, 3])
    state = decoder.init_state(memory, lengths)
    maps = decoder.cross_attention(torch.randint(1, 11, (2, 4)), state)
    if attention == "none":
        assert maps is None
        return
    assert maps.shape == (1, 2, 1, 4, 5)
    torch.testing.assert_close(maps.sum(-1), torch.ones(1, 2, 1, 4))
    assert (maps[0, 1, 0, :, 3:] == 0).all()  # the padding of the shorter source gets no attention


def test_serve_loads_the_model_with_the_device_and_dtype_asked(trained, capsys, monkeypatch):
    import torch
    import uvicorn

    real_load, loaded, ran = any2seq.load, [], []

    def spy(*args):
        loaded.append(real_load(*args))
        return loaded[-1]

    monkeypatch.setattr(any2seq, "load", spy)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.append(kw))
    code, out, err = cli(capsys, "serve", "--model", trained.dir, "--port", "0", "--device", "cpu", "--bf16")
    assert code == 0 and ran and ran[0]["port"] == 0, err
    assert next(loaded[0].model.parameters()).dtype == torch.bfloat16
