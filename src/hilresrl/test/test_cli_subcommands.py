"""The hilresrl command's subcommand table: one list drives the help and the dispatch."""

import importlib.util
import os

from hilresrl import cli
import pytest


def test_the_help_lists_every_subcommand_with_its_summary(capsys):
    with pytest.raises(SystemExit):
        cli.main(['--help'])
    shown = ' '.join(capsys.readouterr().out.split())
    assert 'launch' in shown
    for subcommand in cli.SUBCOMMANDS:
        assert subcommand.name in shown
        assert ' '.join(subcommand.summary.split()) in shown


def test_every_subcommand_names_a_module_with_a_main():
    names = [subcommand.name for subcommand in cli.SUBCOMMANDS]
    assert names == ['base-policy', 'demos', 'replay', 'export', 'import-lerobot',
                     'serve-policy', 'bag-info', 'say']
    for subcommand in cli.SUBCOMMANDS:
        assert importlib.util.find_spec(subcommand.module) is not None, subcommand.module
    assert [s.name for s in cli.SUBCOMMANDS if s.joins_graph] == ['replay', 'say']


def test_a_subcommand_gets_its_own_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('ROS_AUTOMATIC_DISCOVERY_RANGE', raising=False)
    assert cli.main(['bag-info', str(tmp_path / 'nope')]) == 2
    assert 'hilresrl bag-info: ' in capsys.readouterr().err
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE' not in os.environ  # it does not join the graph


def test_a_subcommand_that_joins_the_graph_keeps_discovery_on_this_machine(
        tmp_path, monkeypatch, capsys):
    for name in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY', 'ROS_STATIC_PEERS'):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(['replay', str(tmp_path / 'nope')]) == 2
    assert 'hilresrl replay: ' in capsys.readouterr().err
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'


def test_an_unknown_subcommand_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_status:
        cli.main(['fly'])
    assert exit_status.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err
