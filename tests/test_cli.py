"""Tests for common/cli.py: the argument types, given_options telling typed options from
defaults, strict JSON lines, and run() turning a UserError into one line and an exit status."""
import argparse
import json
import math

import pytest

from common import cli


@pytest.mark.parametrize("convert, good, bad", [
    (cli.positive_int, ["1", "7"], ["0", "-3", "1.5", "x"]),
    (cli.nonnegative_int, ["0", "12"], ["-1", "2.0"]),
    (cli.positive_float, ["0.5", "1e308"], ["0", "-1", "inf", "nan", "x"]),
    (cli.nonnegative_float, ["0", "2.5"], ["-0.1", "inf", "nan"]),
    (cli.fraction, ["0", "0.999"], ["1", "-0.1", "nan"]),
])
def test_argument_types_accept_and_refuse(convert, good, bad):
    for s in good:
        assert convert(s) == float(s)
    for s in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(s).replace(".", r"\.")):
            convert(s)


def test_given_options_lists_only_what_was_typed():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float64")
    names = ("hidden_size", "seed", "dtype")
    assert cli.given_options(parser, [], names) == {}
    # a typed value equal to the default still counts as given
    assert cli.given_options(parser, ["--seed", "0", "--hidden-size", "9"], names) == \
        {"seed": 0, "hidden_size": 9}


def test_perplexity_overflows_to_inf_and_prints_short():
    assert cli.perplexity(math.log(140.0)) == pytest.approx(140.0, rel=1e-12)
    assert cli.perplexity(710.0) == math.inf  # e^710 > 1.8e308, the largest float
    assert cli.ppl_text(139.8765) == "139.88" and cli.ppl_text(999999.0, 3) == "999999.000"
    assert cli.ppl_text(math.exp(250.0)) == "3.746e+108"  # 250 / ln 10 = 108.5736: 10^0.5736 = 3.746
    assert cli.ppl_text(math.inf) == "inf"


def test_json_line_is_strict_json_with_null_for_non_finite():
    line = cli.json_line(iter=3, loss=float("nan"), val=float("inf"), name="é", x=1.5)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"iter": 3, "loss": None, "val": None, "name": "é", "x": 1.5}
    assert "NaN" not in line and "Infinity" not in line and "é" in line
    assert cli.finite_or_none(-math.inf) is None and cli.finite_or_none(2) == 2


def test_run_prints_one_line_and_exits_with_the_errors_status(capsys):
    def fails():
        raise cli.UserError("the reason: the fix", 3)

    with pytest.raises(SystemExit) as info:
        cli.run(fails)
    assert info.value.code == 3
    assert capsys.readouterr().err == "error: the reason: the fix\n"
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: None)
    assert info.value.code == 0
