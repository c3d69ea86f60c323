"Bad input ends with one line that names the problem and the fix; nothing already written is touched."
import json
import pytest
from conftest import run_cli, run_clis
from resdepth.core import ResdepthError
from resdepth.data import fetch, official_md5
import resdepth.data

BAD_GRIDS = [
    (['--datasets', 'bloodmist'], 'unknown dataset'),
    (['--sizes', '100'], 'size 100'),
    (['--depths', '5'], 'depth must be one of 1, 2, 3, 4'),
    (['--study', 'nosuch'], 'unknown study'),
    (['--datasets', 'chestmnist'], "'chestmnist-nofinding' reads its files"),
    (['--study', 'hudson2024', '--sizes', '32'], 'set resize_from'),
    (['--study', 'kittipipatthanapong2023', '--arch', 'alexnet'], 'depth must be one of 5 for alexnet'),
    (['--loss', 'bce', '--datasets', 'bloodmnist'], "loss 'bce' needs two classes"),
]

@pytest.fixture(scope='module')
def bad_grid_runs(tmp_path_factory):
    "Every bad grid above run once, each in its own process into its own empty results root, three at a time: args -> (process, root)."
    roots = [tmp_path_factory.mktemp('bad-grid') for _ in BAD_GRIDS]
    procs = run_clis(*(['run', *args, '--out', root] for (args, _), root in zip(BAD_GRIDS, roots)))
    return {tuple(args): (p, root) for (args, _), p, root in zip(BAD_GRIDS, procs, roots)}

@pytest.mark.parametrize('args, says', BAD_GRIDS)
def test_bad_grid_is_one_line(args, says, bad_grid_runs):
    p, root = bad_grid_runs[tuple(args)]
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and says in p.stderr, p.stderr
    assert not any(root.iterdir())

def test_corrupted_file_is_one_line_and_left_in_place(tmp_path, shared_data):
    bad = tmp_path/'breastmnist.npz'
    bad.write_bytes((shared_data/'breastmnist.npz').read_bytes()[:-100])
    p = run_cli('run', '--depths', '1', '--seeds', '0', '--epochs', '1', '--data-dir', tmp_path, '--out', tmp_path/'runs')
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert official_md5('breastmnist', 28) in p.stderr and str(bad) in p.stderr
    assert bad.stat().st_size == (shared_data/'breastmnist.npz').stat().st_size - 100
    assert not (tmp_path/'runs'/'quick').exists() or not any((tmp_path/'runs'/'quick').glob('*.json'))

def causes(e: BaseException) -> list:
    "`e` and the exceptions it was raised from or while handling."
    out = []
    while e is not None: out.append(e); e = e.__cause__ or e.__context__
    return out

def test_failed_download_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    info = dict(resdepth.data.INFO['pneumoniamnist'], url='http://127.0.0.1:9/pneumoniamnist.npz')  # nothing listens on port 9
    monkeypatch.setitem(resdepth.data.INFO, 'pneumoniamnist', info)  # medmnist's own table: its download reads the address here
    with pytest.raises(ResdepthError) as e: fetch('pneumoniamnist', 28, tmp_path/'data')
    msg = str(e.value)
    assert '\n' not in msg and 'download failed' in msg
    assert info['url'] in msg and info['MD5'] in msg and str(tmp_path/'data'/'pneumoniamnist.npz') in msg
    assert any(isinstance(c, ConnectionRefusedError) for c in causes(e.value)), causes(e.value)  # refused there, not offline
    assert [p.name for p in (tmp_path/'data').iterdir()] == []

def test_failing_cells_are_recorded_the_grid_goes_on_and_retry_failed_reruns_them(tmp_path, shared_data, private_env):
    grid = ['--study', 'fails', '--datasets', 'breastmnist', '--sizes', '28', '--depths', '1', '2', '--seeds', '0',
            '--epochs', '1', '--data-dir', shared_data, '--out', tmp_path]
    p = run_cli('run', *grid, '--device', 'cuda:99', env=private_env)  # no such GPU on any machine: the fit check refuses it in one line
    assert p.returncode == 2 and 'cuda:99 is not a GPU of this machine' in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path/'fails').exists() or not list((tmp_path/'fails').glob('*.json'))
    p = run_cli('run', *grid, '--device', 'cuda:99', '--no-fit-check', env=private_env)  # started anyway: each cell raises inside its kernel
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.count('FAILED') == 2 and '[2/2]' in p.stdout
    for d in (1, 2):
        r = json.loads((tmp_path/'fails'/f'breastmnist-28-d{d}-s0.json').read_text())
        assert r['status'] == 'failed' and r['error'] and r['notebook'].endswith(f'breastmnist-28-d{d}-s0.ipynb')
        assert (tmp_path/'fails'/f'breastmnist-28-d{d}-s0.ipynb').exists()
    p = run_cli('run', *grid, '--device', 'cpu', env=private_env)
    assert p.returncode == 1 and 'nothing to run' in p.stdout and '--retry-failed' in p.stdout, p.stdout + p.stderr
    p = run_cli('run', *grid, '--device', 'cpu', '--retry-failed', env=private_env)
    assert p.returncode == 0 and '2 of 2 cells to run' in p.stdout, p.stdout + p.stderr
    assert all(json.loads(f.read_text())['status'] == 'ok' for f in (tmp_path/'fails').glob('*.json'))
