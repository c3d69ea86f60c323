"""The README's first command on a machine without internet: the quick study's one data file ships inside the package,
and every other file still comes from the data directory or a download."""
import hashlib, json, shutil, subprocess, sys, zipfile
from pathlib import Path
from conftest import ROOT, QUICK_SHORT, offline_env
from resdepth.core import md5sum
from resdepth.data import official_md5

def test_quick_study_runs_from_an_empty_folder_offline(quick_offline):
    cwd, p = quick_offline  # `resdepth run --depths 1 --seeds 0 --epochs 1` in an empty folder, offline (conftest; test_docs reads it too)
    assert p.args[1:] == ['run', *QUICK_SHORT]
    assert p.returncode == 0, p.stdout + p.stderr
    copied = cwd/'data'/'breastmnist.npz'
    assert md5sum(copied) == official_md5('breastmnist', 28)
    assert sum('copied the breastmnist.npz shipped with resdepth' in l for l in p.stdout.splitlines()) == 1, p.stdout
    r = json.loads((cwd/'runs'/'quick'/'breastmnist-28-d1-s0.json').read_text())
    assert r['status'] == 'ok' and r['data_verified'] is True and r['n']['test'] == 156

def test_other_files_still_need_the_data_folder_or_a_download(tmp_path):
    exe = Path(sys.executable).parent/'resdepth'
    p = subprocess.run([str(exe), 'run', '--study', 'o', '--datasets', 'pneumoniamnist', '--sizes', '28', '--depths', '1',
                        '--seeds', '0', '--epochs', '1'], cwd=tmp_path, capture_output=True, text=True, env=offline_env(), timeout=300)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert 'pneumoniamnist.npz is missing' in p.stderr and 'download failed' in p.stderr
    assert not (tmp_path/'data'/'pneumoniamnist.npz').exists()

def test_the_wheel_carries_the_file_and_its_attribution(tmp_path):
    src = tmp_path/'src'  # a copy of the checkout, so the build leaves nothing in it
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.git', '.venv', 'runs', 'data', '_book', 'build', '*.egg-info', '__pycache__'))
    p = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-w', str(tmp_path), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    wheel, = tmp_path.glob('resdepth-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {'resdepth/datasets/breastmnist.npz', 'resdepth/datasets/README.md'} <= names, sorted(names)
        data = z.read('resdepth/datasets/breastmnist.npz')
        assert 'CC BY 4.0' in z.read('resdepth/datasets/README.md').decode()
    assert hashlib.md5(data).hexdigest() == official_md5('breastmnist', 28)
