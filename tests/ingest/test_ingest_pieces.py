"""Pieces of a large text file: whole lines, the header on each, quoted fields never split."""

import gzip
import io

from tasks.ingest.pieces import open_text, text_pieces


def test_pieces_are_whole_lines_each_with_the_header_and_their_first_line_number():
    text = b"sensor_id,value\n" + b"".join(b"s%d,%d\n" % (i, i) for i in range(10))
    pieces = list(text_pieces(io.BytesIO(text), 20, header=True, quoted=True))
    assert all(p.startswith(b"sensor_id,value\n") and p.endswith(b"\n") for _, p in pieces)
    assert b"".join(p.removeprefix(b"sensor_id,value\n") for _, p in pieces) == text.split(b"\n", 1)[1]
    firsts = [line for line, _ in pieces]
    assert firsts[0] == 2 and firsts == sorted(set(firsts))
    for line, piece in pieces:  # line numbers count the header as line 1
        assert piece.split(b"\n")[1].startswith(b"s%d," % (line - 2))


def test_a_quoted_field_with_line_breaks_is_never_cut():
    rows = [b's1,"a\nb\nc",1\n', b"s2,plain,2\n"] * 6
    text = b"sensor_id,note,value\n" + b"".join(rows)
    pieces = [p for _, p in text_pieces(io.BytesIO(text), 16, header=True, quoted=True)]
    assert all(p.count(b'"') % 2 == 0 for p in pieces)
    assert b"".join(p.split(b"\n", 1)[1] for p in pieces) == b"".join(rows)


def test_json_lines_have_no_header_and_a_last_line_without_newline_is_kept(tmp_path):
    lines = b'{"a": 1}\n{"a": "say \\"hi\\""}\n{"a": 3}'
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(lines))
    with open_text(path, compressed=True) as stream:
        pieces = list(text_pieces(stream, 8, header=False, quoted=False))
    assert b"".join(p for _, p in pieces) == lines
    assert [line for line, _ in pieces][0] == 1
