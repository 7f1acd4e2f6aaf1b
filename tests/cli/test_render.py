"""Output rules: plain lines carry no control characters; colour follows the flags."""

from __future__ import annotations

import re

import pytest

from cli.render import Column, Output


def test_a_plain_line_drops_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    Output().line("a\x1b[31mb\rc\x07d\te")
    assert capsys.readouterr().out == "a[31mbcd\te\n"


@pytest.mark.parametrize(
    ("env", "color", "expected"),
    [
        ({}, True, False),
        ({}, False, True),
        ({"NO_COLOR": "1"}, True, True),
        ({"TERM": "dumb"}, True, True),
    ],
)
def test_colour_is_off_with_no_color_term_dumb_or_the_flag(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], color: bool, expected: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    output = Output(color=color)
    assert output.no_color is expected
    assert output.err.no_color is expected


def test_a_long_error_stays_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    Output().error("word " * 60)
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_piped_table_keeps_every_cell_on_its_row_s_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    long = "word " * 40
    Output().table("A title " * 15, [("id", "left"), ("description", "left")], [["x" * 64, long]])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].rstrip() == ("A title " * 15).rstrip()
    assert ["x" * 64, long.strip()] in [
        [c.strip() for c in line.split("│")[1:-1]] for line in lines
    ]
    assert len(lines) == 6  # title, top rule, heading, rule, the row, bottom rule


def test_on_a_terminal_a_table_fits_the_terminal_s_width(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: treat stdout as a terminal
    monkeypatch.setenv("COLUMNS", "60")
    Output(color=False).table("t", [("n", "right"), ("text", "left")], [["1", "word " * 40]])
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in capsys.readouterr().out.splitlines()]
    assert max(len(line) for line in lines) == 60
    assert len(lines) > 6  # the long cell folded onto several lines


def test_a_listing_in_csv_has_every_column_and_guards_only_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = Output()
    output.format = "csv"
    columns = [Column("text", text=True), Column("amount", right=True), Column("flag", table=False)]
    output.listing(
        "t", columns, [{"text": "=1+2", "amount": "-3.00", "flag": True}, {"text": None}]
    )
    assert capsys.readouterr().out == "text,amount,flag\n'=1+2,-3.00,true\n,,\n"


def test_a_listing_table_shows_its_table_columns_as_they_say(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    columns = [Column("a", "A"), Column("b", table=False), Column("c", show=lambda r: "c!")]
    Output().listing("t", columns, [{"a": "1", "b": "hidden", "c": "x"}])
    out = capsys.readouterr().out
    assert "hidden" not in out
    assert ["1", "c!"] in [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    assert " A " in out and " c " in out
