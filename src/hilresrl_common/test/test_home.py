"""$HILRESRL_HOME and the folders under it: runs, evaluation runs, bags, base policies."""

import pathlib

from hilresrl_common import home
import pytest


@pytest.fixture
def hilresrl_home(tmp_path, monkeypatch):
    monkeypatch.setenv('HILRESRL_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home'


def test_hilresrl_home_is_respected(hilresrl_home):
    assert home.hilresrl_home() == hilresrl_home
    assert home.runs_folder() == hilresrl_home / 'runs'


def test_without_hilresrl_home_it_is_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv('HILRESRL_HOME', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    assert home.hilresrl_home() == tmp_path / '.hilresrl'
    monkeypatch.setenv('HILRESRL_HOME', '')  # empty: as if unset
    assert home.hilresrl_home() == tmp_path / '.hilresrl'


def test_new_run_folders_are_dated_and_evaluation_runs_marked(hilresrl_home):
    training = home.new_run_folder()
    evaluation = home.new_run_folder(evaluation=True)
    assert training.parent == evaluation.parent == hilresrl_home / 'runs'
    assert len(training.name) == len('20260101-120000') and training.name[8] == '-'
    assert evaluation.name.endswith('-eval') and not training.name.endswith('-eval')
    assert not training.exists()  # only named, not created


def test_newest_run_skips_evaluation_runs_and_files(hilresrl_home):
    assert home.newest_run() is None  # no runs folder yet
    runs = hilresrl_home / 'runs'
    runs.mkdir(parents=True)
    assert home.newest_run() is None
    for name in ('20260101-080000', '20260102-080000', '20260103-080000-eval'):
        (runs / name).mkdir()
    (runs / '20260104-080000').write_text('a file, not a run')
    assert home.newest_run() == runs / '20260102-080000'


def test_bags_and_base_policies_live_under_home(hilresrl_home):
    bag = home.new_bag_folder()
    assert bag.parent == hilresrl_home / 'bags' and not bag.exists()
    assert home.base_policy_folder('push-v3') == hilresrl_home / 'base_policies' / 'push-v3'
    assert home.base_policy_folder('push-v3', 'bc') == home.base_policy_folder('push-v3')
    assert home.base_policy_folder('push-v3', 'flow') == pathlib.Path(
        hilresrl_home, 'base_policies', 'push-v3-flow')


def test_a_base_policys_demonstrations_with_cameras_sit_beside_its_own(tmp_path):
    assert home.base_policy_demonstrations(tmp_path) == tmp_path / 'demonstrations.npz'
    pixels = home.base_policy_demonstrations(tmp_path, ('corner', 'gripperPOV'), 128)
    assert pixels == tmp_path / 'demonstrations-corner-gripperPOV-128px.npz'
    assert home.is_base_policy_demonstrations(pixels.name)
    assert home.is_base_policy_demonstrations('demonstrations.npz')
    assert not home.is_base_policy_demonstrations('notes.npz')
    assert not home.is_base_policy_demonstrations('demonstrations-mine.npz')
