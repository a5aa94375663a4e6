"""ament-style lint of all Python in the repository: flake8 (max line 99) and pep257."""

import pathlib

from ament_flake8.main import main_with_errors as flake8_main
from ament_pep257.main import main as pep257_main
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATHS = [str(path) for path in sorted(ROOT.glob('src/*')) + [
    ROOT / 'launch', ROOT / 'scripts', ROOT / 'test', ROOT / 'benchmarks', ROOT / 'conftest.py']
    if path.exists()]


@pytest.mark.linter
def test_flake8():
    code, errors = flake8_main(argv=PATHS)
    assert code == 0, f'flake8 found {len(errors)} problem(s):\n' + '\n'.join(errors)


@pytest.mark.linter
def test_pep257(capsys):
    code = pep257_main(argv=PATHS)
    captured = capsys.readouterr()
    assert code == 0, 'pep257 found problems:\n' + captured.err + captured.out
