"Shared fixtures: the real MedMNIST files beside the project, the repo root, and a CLI runner."
import os, shutil, subprocess, sys, tempfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='session')
def shared_data() -> Path:
    "The md5-verified official MedMNIST files (../shared/data/medmnist unless RESDEPTH_TEST_DATA says otherwise)."
    p = Path(os.environ.get('RESDEPTH_TEST_DATA', ROOT.parent/'shared'/'data'/'medmnist'))
    if not (p/'breastmnist.npz').exists(): pytest.fail(f"official MedMNIST files not found in {p}; set RESDEPTH_TEST_DATA")
    return p

def run_cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    "Run the installed `resdepth` command the way a user does."
    exe = Path(sys.executable).parent/'resdepth'
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=1800)

def chromium_dom(html: Path) -> str:
    "The DOM of a page after headless Chromium has loaded it."
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe is None: pytest.fail("headless Chromium is needed for the book test: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix='resdepth-chromium-') as profile:  # a fresh profile: no lock from another run
        p = subprocess.run([exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                            '--disable-background-networking', '--disable-component-update', '--disable-sync',
                            f'--user-data-dir={profile}', '--dump-dom', html.as_uri()],
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and '<body' in p.stdout, p.stderr
    return p.stdout
