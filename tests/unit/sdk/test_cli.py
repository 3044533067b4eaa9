"""The `llm-infra` dispatcher: plug-in subcommands, help, a clear word when an extra is missing."""

from __future__ import annotations

from importlib import metadata

import pytest

import llm_infra
from llm_infra import cli


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "usage: llm-infra" in out
    assert "up" in out  # registered by the control plane through its entry point


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"llm-infra {llm_infra.__version__}"


def test_up_parses_its_options() -> None:
    args = cli.build_parser().parse_args(["up", "--port", "9999", "--host", "192.0.2.10"])
    # Unset flags stay None: the settings (environment, file, defaults) fill them in.
    assert (args.port, args.host, args.log_level) == (9999, "192.0.2.10", None)
    assert callable(args.handler)


def test_command_whose_extra_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = metadata.EntryPoint(
        name="operate",
        value="llm_infra_not_installed.cli:register [operator]",
        group=cli.ENTRY_POINT_GROUP,
    )
    monkeypatch.setattr(metadata, "entry_points", lambda group: [absent])
    with pytest.raises(SystemExit) as done:
        cli.main(["operate"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "`operate` needs llm-infra[operator]" in err
    assert "llm_infra_not_installed" in err
