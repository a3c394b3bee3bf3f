"""Option groups (trustkit.cli.common.OptionGroup): options several commands declare together,
declared once, unfolded into each command's options in place, their values handed back as one
object. These tests guard the unfolding (order, defaults, values) and the store directories,
which the other CLI tests reach only through TRUSTKIT_HOME."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from typer.main import get_command
from typer.testing import CliRunner

from trustkit.cli.app import app
from trustkit.cli.common import (
    DIRS,
    AccountOptions,
    DirOptions,
    OptionGroup,
    unfold_option_groups,
)

runner = CliRunner()


class _Pair(OptionGroup):
    left: Annotated[str, typer.Option("--left")] = "l"
    right: Annotated[int, typer.Option("--right")] = 0


PAIR = _Pair()


def _cmd(
    first: Annotated[str, typer.Option("--first")],
    pair: _Pair = PAIR,
    dirs: DirOptions = DIRS,
    last: Annotated[bool, typer.Option("--last")] = False,
) -> None:
    print(json.dumps([first, pair.left, pair.right, dirs.config_dir, dirs.data_dir, last]))


def _params(fn: typer.models.CommandFunctionType) -> list[str]:
    one = typer.Typer(add_completion=False)
    one.command()(unfold_option_groups(fn))
    return [p.name for p in get_command(one).params]


def test_a_group_stands_for_its_options_in_place_and_passes_their_values() -> None:
    assert _params(_cmd) == ["first", "left", "right", "config_dir", "data_dir", "keystore_dir", "last"]
    one = typer.Typer(add_completion=False)
    one.command()(unfold_option_groups(_cmd))
    out = runner.invoke(one, ["--first", "a", "--right", "3", "--data-dir", "/d", "--last"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == ["a", "l", 3, None, "/d", True]


def test_a_subclass_lists_its_options_before_its_base_classes() -> None:
    assert list(AccountOptions.options()) == ["account", "operator", "config_dir", "data_dir", "keystore_dir"]


def test_a_command_without_groups_is_left_alone() -> None:
    def plain(x: int = 1) -> None:
        pass

    assert unfold_option_groups(plain) is plain


def test_the_store_options_reach_the_library(tmp_path: Path) -> None:
    """--config-dir/--data-dir/--keystore-dir (DirOptions) choose where the store is, for a
    command with an AccountOptions group as for one with a DirOptions group."""
    dirs = ["--config-dir", str(tmp_path / "c"), "--data-dir", str(tmp_path / "s")]
    dirs += ["--keystore-dir", str(tmp_path / "k")]
    env = {"TRUSTKIT_HOME": str(tmp_path / "elsewhere"), "NSC_HOME": "", "NKEYS_PATH": ""}
    assert runner.invoke(app, ["init", "-n", "acme", *dirs], env=env).exit_code == 0
    report = json.loads(runner.invoke(app, ["env", *dirs, "--json"], env=env).stdout)
    assert (report["config_dir"], report["stores_dir"], report["keys_dir"]) == tuple(
        str(tmp_path / d) for d in ("c", "s", "k")
    )
    assert (tmp_path / "s" / "acme").is_dir() and not (tmp_path / "elsewhere").exists()
    users = runner.invoke(app, ["list", "users", "-a", "acme", "--operator", "acme", *dirs], env=env)
    assert users.exit_code == 0, users.output
    assert [u["name"] for u in json.loads(users.stdout)] == ["acme"]
    missing = runner.invoke(app, ["list", "users", "--data-dir", str(tmp_path / "none")], env=env)
    assert missing.exit_code != 0 and "operator" in missing.output
