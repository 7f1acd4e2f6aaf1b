"""Output rules: plain lines carry no control characters; colour follows the flags."""

from __future__ import annotations

import pytest

from cli.render import Output


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
