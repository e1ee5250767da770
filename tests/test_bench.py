"""Tests for bench.py's parts that are not timing: the Penn Treebank subcommand's check of its
data folder and the command line it builds from a recipe. (Timing belongs to bench.py itself.)"""

import bench
import rnnlm
from conftest import run


def test_ptb_without_its_files_says_how_to_fetch_them(tmp_path):
    (tmp_path / "ptb.train.txt").write_text("the cat sat \n", encoding="utf-8")  # valid missing
    out = tmp_path / "kept.npz"
    out.write_bytes(b"not touched")
    done = run("bench.py", ["ptb", "--data", tmp_path, "--budget-seconds", 5, "--out", out], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'ptb.valid.txt'} not found: fetch the Penn Treebank with "
        "`python data/download_ptb.py`, or name its folder with --data"]
    assert out.read_bytes() == b"not touched"


def test_a_recipe_becomes_rnnlm_options():
    assert bench.as_flags({"hidden_size": 200, "tie_weights": "", "learning_rate": 20}) == [
        "--hidden-size", "200", "--tie-weights", "--learning-rate", "20"]
    # rnnlm.py's own parser reads both PTB recipes back to the values they name
    for recipe in (bench.PTB_CH6, bench.PTB_RACE):
        args = rnnlm.build_parser().parse_args(["in.txt", *bench.as_flags(recipe)])
        for name, value in recipe.items():
            assert getattr(args, name) == (True if value == "" else value), name
