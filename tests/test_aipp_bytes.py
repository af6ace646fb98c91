"""AIPP configs read as bytes, the way protobuf's C++ text tokenizer reads them (GraphEngine parses
--insert_op_conf with it): comment bytes are skipped undecoded, string values must be UTF-8."""
from __future__ import annotations

import pytest

from matteconv.aipp import load_config
from matteconv.aipp.parse import AippParseError, decode_config

BODY = ("aipp_op {\n  aipp_mode: static\n  input_format: RGB888_U8  # 输入格式\n  src_image_size_w: 8\n"
        "  src_image_size_h: 4\n}\n")


def test_a_comment_cut_mid_character_is_read(tmp_path):
    raw = BODY.encode("utf-8")
    cut = raw.index("式".encode()) + 1  # the comment ends after the first of 式's three bytes
    raw = raw[:cut] + raw[raw.index(b"\n", cut):]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # what the file is: not UTF-8
    p = tmp_path / "cut.cfg"
    p.write_bytes(raw)
    op = load_config(p).ops[0]
    assert (op.input_format, op.src_hw()) == ("RGB888_U8", (4, 8))
    assert op.lines["src_image_size_w"] == 4  # lines still count from the bytes


def test_a_gbk_comment_is_read(tmp_path):
    p = tmp_path / "gbk.cfg"
    p.write_bytes(BODY.encode("gbk"))
    assert load_config(p).ops[0].src_hw() == (4, 8)


def test_bytes_outside_comments_are_refused_with_their_line():
    with pytest.raises(AippParseError, match=r"s.cfg:3: not UTF-8 text in a string value") as err:
        decode_config(b'aipp_op {\n  aipp_mode: static\n  related_input_name: "\xc4\xe3"\n}\n', "s.cfg")
    assert (err.value.rule, err.value.line) == ("proto.utf8", 3)
    with pytest.raises(AippParseError, match=r"b.cfg:2: not UTF-8 text, outside a comment"):
        decode_config(b"aipp_op {\n  aipp_mode: st\xe9tic\n}\n", "b.cfg")
    # a '#' inside a string opens no comment: the bytes after it are still the string's
    with pytest.raises(AippParseError, match=r"q.cfg:1: not UTF-8 text in a string value"):
        decode_config(b'aipp_op { related_input_name: "a#\xff" }', "q.cfg")
    assert decode_config('aipp_op { related_input_name: "名" } # 注\n'.encode("utf-8")) == \
        'aipp_op { related_input_name: "名" } # 注\n'
