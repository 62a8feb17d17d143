"""Reading text files: gzip and plain agree, and every error names the file and line."""
import gzip
import random

import pytest

from any2seq.data.text import check_parallel, count_lines, read_lines
from any2seq.errors import UserError

LINES = ["Ein Hund läuft.", "  padded both sides \t", "", "Grüße, 你好 — ok", "tab\tinside", "last"]


def write(path, data: bytes):
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("ending", ["\n", "", "\r\n"])
def test_gzip_and_plain_read_the_same(tmp_path, ending):
    data = (ending or "\n").join(LINES).encode() + ending.encode()
    plain, packed = write(tmp_path / "a.txt", data), write(tmp_path / "a.txt.gz", data)
    assert list(read_lines(plain)) == list(read_lines(packed)) == [line.strip() for line in LINES]
    assert count_lines(plain) == count_lines(packed) == len(LINES)


def test_only_newline_splits_lines(tmp_path):
    # \r, \x0b, \x1c and U+2028 would split lines in str.splitlines(); line numbers must match wc -l
    path = write(tmp_path / "a.txt", "a\rb\x0bc\x1cd\u2028e\nsecond\n".encode())
    assert list(read_lines(path)) == ["a\rb\x0bc\x1cd\u2028e", "second"]
    assert count_lines(path) == 2


@pytest.mark.parametrize("name", ["bad.txt", "bad.txt.gz"])
def test_invalid_utf8_names_file_line_and_column(tmp_path, name):
    path = write(tmp_path / name, "ok\nfine\nsü\xdf ".encode() + b"\xff here\n")
    with pytest.raises(UserError) as error:
        list(read_lines(path))
    assert str(error.value) == f"{path}:3: not valid UTF-8 (byte 0xff at column 5)"


def test_reading_streams(tmp_path):
    path = write(tmp_path / "a.txt", b"one\ntwo\n\xc3(\n")
    lines = read_lines(path)  # the bad third line is not read until asked for
    assert next(lines) == "one" and next(lines) == "two"
    with pytest.raises(UserError, match=":3: not valid UTF-8"):
        next(lines)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.de"
    for read in (lambda p: list(read_lines(p)), count_lines):
        with pytest.raises(UserError) as error:
            read(path)
        assert str(error.value) == f"{path}: no such file"


def test_corrupt_gzip(tmp_path):
    not_gzip, truncated = tmp_path / "plain.gz", tmp_path / "cut.gz"
    not_gzip.write_bytes(b"just text\n")
    text = "".join(random.Random(0).choices("abcdefghij \n", k=100_000))  # compresses poorly
    good = gzip.compress(text.encode())
    truncated.write_bytes(good[: len(good) // 2])
    for path in (not_gzip, truncated):
        for read in (lambda p: list(read_lines(p)), count_lines):
            with pytest.raises(UserError) as error:
                read(path)
            message = str(error.value)
            assert message.startswith(f"{path}:") and "corrupt gzip" in message and "\n" not in message


def test_count_lines(tmp_path):
    assert count_lines(write(tmp_path / "empty.txt", b"")) == 0
    assert count_lines(write(tmp_path / "one.txt", b"no newline")) == 1
    assert count_lines(write(tmp_path / "blank.txt", b"\n\n")) == 2


def test_check_parallel(tmp_path):
    src, tgt = write(tmp_path / "x.de", b"a\nb\nc\n"), write(tmp_path / "x.en.gz", b"a\nb\nc")
    assert check_parallel(src, tgt) == 3
    short = write(tmp_path / "short.en", b"a\nb\n")
    with pytest.raises(UserError) as error:
        check_parallel(src, short)
    assert str(error.value) == f"{src} has 3 lines but {short} has 2"


def test_check_parallel_empty(tmp_path):
    src, tgt = write(tmp_path / "x.de", b""), write(tmp_path / "x.en", b"")
    with pytest.raises(UserError) as error:
        check_parallel(src, tgt)
    assert str(error.value) == f"{src}: no data"
