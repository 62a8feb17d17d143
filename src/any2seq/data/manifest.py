"""Manifests: lists of a person's own files (recordings, images) to evaluate a model on, in the
layouts the field uses: one path a line; TSV with a header (Common Voice's ``path``/``sentence``),
without one (``path<TAB>transcript``), or fairseq's wav2vec layout (a root folder, then
``path<TAB>frames``); JSON lines (NeMo's ``audio_filepath``/``text``, Hugging Face audiofolder's
``file_name``/``transcription``). Relative paths resolve against the manifest's folder."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, where
from .text import read_lines

PATH_KEYS = ("path", "audio_filepath", "file_name", "filename", "file", "audio", "image", "image_path")
TEXT_KEYS = ("text", "sentence", "transcript", "transcription", "caption", "normalized_text")


@dataclass(frozen=True)
class Entry:
    path: Path  # resolved against the manifest's folder
    text: str | None  # the reference, where the manifest carries one
    line: int  # 1-based, for messages


def read_manifest(manifest) -> list[Entry]:
    """The entries of a manifest; a malformed line raises a UserError naming ``manifest:line``."""
    manifest = Path(manifest)
    lines = list(enumerate(read_lines(manifest), 1))
    if not lines:
        raise UserError(f"{where(manifest)}: empty manifest; list one file a line")
    blank = next((n for n, line in lines if not line), None)
    if blank is not None:  # skipping it would shift every later file against its line of --ref
        raise UserError(f"{where(manifest, blank)}: empty line; list one file a line")
    suffix = manifest.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if suffix in ("jsonl", "json", "ndjson"):
        entries = [_json_entry(manifest, n, line) for n, line in lines]
    elif suffix == "tsv":
        entries = _tsv_entries(manifest, lines)
    else:
        entries = [Entry(_resolve(manifest, manifest.parent, line, n), None, n) for n, line in lines]
    if not entries:
        raise UserError(f"{where(manifest)}: no files listed, only a header")
    return entries


def _resolve(manifest: Path, root: Path, text: str, n: int) -> Path:
    if "\0" in text:
        raise UserError(f"{where(manifest, n)}: a NUL character in the path")
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path


def _json_entry(manifest: Path, n: int, line: str) -> Entry:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise UserError(f"{where(manifest, n)}: not valid JSON ({' '.join(str(e).split())[:80]})") from None
    if not isinstance(item, dict):
        raise UserError(f"{where(manifest, n)}: a JSON object with a path ({', '.join(PATH_KEYS[:3])}) expected")
    path_key = next((k for k in PATH_KEYS if isinstance(item.get(k), str)), None)
    if path_key is None:
        raise UserError(f"{where(manifest, n)}: no path; one of the keys {', '.join(PATH_KEYS)} must hold it")
    text_key = next((k for k in TEXT_KEYS if k in item), None)
    text = item.get(text_key) if text_key else None
    if text is not None and not isinstance(text, str):
        raise UserError(f"{where(manifest, n)}: {text_key!r} must be a string, got {type(text).__name__}")
    return Entry(_resolve(manifest, manifest.parent, item[path_key], n), text, n)


def _tsv_entries(manifest: Path, lines: list[tuple[int, str]]) -> list[Entry]:
    rows = [(n, line.split("\t")) for n, line in lines]
    first = [c.strip().lower() for c in rows[0][1]]
    root = manifest.parent
    if len(first) == 1 and len(rows) > 1 and all(len(r) == 2 and r[1].strip().isdigit() for _, r in rows[1:]):
        root = _resolve(manifest, manifest.parent, rows[0][1][0], rows[0][0])  # fairseq: the first line is the root
        return [Entry(_resolve(manifest, root, r[0], n), None, n) for n, r in rows[1:]]
    path_col, text_col = 0, 1 if len(first) > 1 else None
    if any(k in first for k in PATH_KEYS):  # a header row names the columns
        path_col = next(first.index(k) for k in PATH_KEYS if k in first)
        text_col = next((first.index(k) for k in TEXT_KEYS if k in first), None)
        rows = rows[1:]
    entries = []
    for n, cells in rows:
        if len(cells) <= path_col:
            raise UserError(f"{where(manifest, n)}: {len(cells)} tab-separated fields, no path in field {path_col + 1}")
        text = None if text_col is None else cells[text_col].strip() if text_col < len(cells) else ""  # cut: empty
        entries.append(Entry(_resolve(manifest, root, cells[path_col].strip(), n), text, n))
    return entries


def references(manifest: Path, entries: list[Entry], ref: Path | None) -> list[str]:
    """The reference of each entry: the lines of ``ref`` (aligned with the entries) or the manifest's own."""
    if ref is not None:
        refs = list(read_lines(ref))
        if len(refs) != len(entries):
            raise UserError(f"--ref {ref}: {len(refs)} lines, but the manifest {manifest} lists {len(entries)} files")
        return refs
    missing = next((e for e in entries if e.text is None), None)
    if missing is not None:
        raise UserError(f"{where(manifest, missing.line)}: no transcript in the manifest; give --ref with one a line")
    return [e.text for e in entries]


def read_entries(read, manifest: Path, entries: list[Entry]) -> list:
    """``read(path)`` of every entry (a task's reader), its errors prefixed with the manifest's line."""
    inputs = []
    for entry in entries:
        try:
            inputs.append(read(entry.path))
        except UserError as e:
            raise UserError(f"{where(manifest, entry.line)}: {e}") from None
    return inputs
