// The demo page: sends the input (text, an uploaded file, or a recording from the microphone) to
// /v1/predict, lists the n-best outputs, and draws the first output's cross-attention as a heatmap
// (rows: output pieces, columns: source positions).
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let attention = null;  // {weights: [layer][head][T][S], src_labels, tgt_labels}

function showError(message) { $("error").textContent = message || ""; }

async function loadModel() {
  const response = await fetch("/v1/model");
  model = await response.json();
  const enc = model.config.encoder, dec = model.config.decoder;
  $("model").textContent = `${model.task}: ${model.input_kind} → ${model.output_kind}, ` +
    `${enc.kind} encoder, ${dec.kind} decoder, ${(model.parameters || 0).toLocaleString()} parameters`;
  if (model.input_kind !== "text") {  // images and audio are uploaded, never named by path
    const file = document.createElement("input");
    file.type = "file";
    file.id = "input";
    const audio = ".wav,.flac,.ogg,.oga,.opus,audio/*";  // what the server's reader takes
    file.accept = model.input_kind === "image" ? "image/*" : model.input_kind === "audio" ? audio : "";
    $("input-box").replaceChildren(file);
  }
  if (model.output_kind !== "text") {
    for (const id of ["mode", "beam", "n-best", "temperature"]) $(id).disabled = true;
  }
  if (model.input_kind === "audio" && navigator.mediaDevices && window.MediaRecorder) $("record").hidden = false;
  $("submit").textContent = model.task === "translation" ? "Translate" : "Run";
  $("submit").disabled = false;
}

function options() {
  const mode = $("mode").value, beam = Number($("beam").value), nBest = Number($("n-best").value);
  const opts = {attention: Boolean(model && model.attention)};
  if (mode === "greedy") Object.assign(opts, {beam: 1, n_best: 1});
  if (mode === "beam") Object.assign(opts, {beam: beam, n_best: Math.min(nBest, beam)});
  if (mode === "sampling") Object.assign(opts, {sample: true, n_best: nBest, temperature: Number($("temperature").value)});
  return opts;
}

async function submit(recorded) {  // recorded: a File from the microphone, else the page's input
  showError("");
  const opts = options();
  let request;
  if (model.input_kind === "text") {
    const text = $("input").value.replace(/\s+/g, " ").trim();
    request = {method: "POST", headers: {"Content-Type": "application/json"},
               body: JSON.stringify({inputs: [text], ...opts})};
  } else {
    const file = recorded instanceof File ? recorded : $("input").files[0];
    if (!file) { showError("choose a file first"); return; }
    const form = new FormData();
    form.append("file", file);
    for (const [key, value] of Object.entries(opts)) form.append(key, String(value));
    request = {method: "POST", body: form};
  }
  $("submit").disabled = true;
  try {
    const response = await fetch("/v1/predict", request);
    const body = await response.json();
    if (!response.ok) { showError(body.error || response.statusText); return; }
    showResult(body.results[0]);
  } catch (e) {
    showError(String(e));
  } finally {
    $("submit").disabled = false;
  }
}

function showResult(result) {
  const list = $("outputs");
  list.replaceChildren();
  if (result.frames) {
    const li = document.createElement("li"), img = document.createElement("img");
    img.src = "data:image/png;base64," + result.frames.png;
    img.alt = `${result.frames.shape[0]} predicted frames`;
    li.append(img);
    list.append(li);
  }
  for (const output of result.outputs || []) {
    const li = document.createElement("li"), score = document.createElement("span");
    li.textContent = output.text || "(empty)";
    score.className = "score";
    score.textContent = output.score === null ? "" : output.score.toFixed(3);
    li.append(score);
    list.append(li);
  }
  attention = result.attention || null;
  $("attention").hidden = !attention;
  if (attention) {
    fillSelect($("layer"), attention.weights.length);
    fillSelect($("head"), attention.weights[0].length);
    drawHeatmap();
  }
}

function fillSelect(select, n) {
  const keep = select.value;
  select.replaceChildren(new Option("average", "avg"));
  for (let i = 0; i < n; i++) select.append(new Option(String(i), String(i)));
  select.value = Number(keep) < n ? keep : "avg";
}

// (layers, heads, T, S) -> (T, S): the chosen layer and head, or the mean over those left at "average".
function selected() {
  const w = attention.weights, layer = $("layer").value, head = $("head").value;
  const layers = layer === "avg" ? w.map((_, i) => i) : [Number(layer)];
  const heads = head === "avg" ? w[0].map((_, i) => i) : [Number(head)];
  const T = w[0][0].length, S = w[0][0][0].length, n = layers.length * heads.length;
  const grid = Array.from({length: T}, () => new Float64Array(S));
  for (const l of layers) for (const h of heads) for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) {
    grid[t][s] += w[l][h][t][s] / n;
  }
  return grid;
}

function colour(x) {  // 0 -> dark blue, 1 -> yellow (a viridis-like ramp)
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const p = Math.min(Math.max(x, 0), 1) * (stops.length - 1), i = Math.min(Math.floor(p), stops.length - 2);
  const f = p - i, a = stops[i], b = stops[i + 1];
  return `rgb(${a.map((v, k) => Math.round(v + f * (b[k] - v))).join(",")})`;
}

function drawHeatmap() {
  const grid = selected(), src = attention.src_labels, tgt = attention.tgt_labels;
  const T = grid.length, S = T ? grid[0].length : 0;
  const canvas = $("heatmap"), ctx = canvas.getContext("2d");
  ctx.font = "12px system-ui, sans-serif";
  const left = 10 + Math.max(0, ...tgt.map((l) => ctx.measureText(l).width));
  const top = 10 + Math.max(0, ...src.map((l) => ctx.measureText(l).width));
  const cell = Math.max(8, Math.min(28, Math.floor(800 / Math.max(S, 1))));
  canvas.width = left + S * cell + 10;
  canvas.height = top + T * cell + 10;
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  let max = 1e-9;
  for (const row of grid) for (const v of row) max = Math.max(max, v);
  for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) {
    ctx.fillStyle = colour(grid[t][s] / max);
    ctx.fillRect(left + s * cell, top + t * cell, cell, cell);
  }
  ctx.fillStyle = "#222";
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  tgt.forEach((label, t) => ctx.fillText(label, left - 5, top + t * cell + cell / 2));
  ctx.save();
  ctx.textAlign = "left";
  src.forEach((label, s) => {
    ctx.setTransform(1, 0, 0, 1, left + s * cell + cell / 2, top - 5);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(label, 0, 0);
  });
  ctx.restore();
}

// The microphone: MediaRecorder's compressed recording (WebM/Ogg Opus) is decoded by the browser,
// mixed to mono and sent as a 16-bit WAV at the browser's rate; the server resamples it for the model.
const MAX_SECONDS = 15;  // 16-bit mono at 48 kHz: ~1.4 MB, inside the server's default body limit
let recorder = null;

async function toggleRecording() {
  if (recorder) { recorder.stop(); return; }
  showError("");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({audio: true});
  } catch (e) {
    showError("no microphone: " + e.message);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    clearTimeout(limit);
    $("record").textContent = "Record";
    $("recording").textContent = "";
    try {
      const wav = await encodeWav(new Blob(chunks, {type: chunks.length ? chunks[0].type : ""}));
      if ($("playback").src) URL.revokeObjectURL($("playback").src);
      $("playback").src = URL.createObjectURL(wav);  // what the model heard, to listen to
      $("playback").hidden = false;
      await submit(wav);
    } catch (e) {
      showError("cannot read the recording: " + e.message);
    }
  };
  recorder.start();
  const limit = setTimeout(() => recorder && recorder.stop(), MAX_SECONDS * 1000);
  $("record").textContent = "Stop";
  $("recording").textContent = `recording (up to ${MAX_SECONDS} s)…`;
}

async function encodeWav(blob) {
  const context = new AudioContext();
  const audio = await context.decodeAudioData(await blob.arrayBuffer());
  context.close();
  const n = audio.length, channels = audio.numberOfChannels, rate = audio.sampleRate;
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  const data = [...Array(channels).keys()].map((c) => audio.getChannelData(c));
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (const channel of data) sum += channel[i];
    view.setInt16(44 + 2 * i, Math.round(Math.max(-1, Math.min(1, sum / channels)) * 32767), true);
  }
  return new File([view.buffer], "recording.wav", {type: "audio/wav"});
}

$("submit").addEventListener("click", () => submit());
$("record").addEventListener("click", toggleRecording);
$("layer").addEventListener("change", () => attention && drawHeatmap());
$("head").addEventListener("change", () => attention && drawHeatmap());
loadModel().catch((e) => showError("cannot load the model description: " + e));
