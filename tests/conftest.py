"Shared fixtures: the real MedMNIST files beside the project, the repo root, a CLI runner, and a private temporary folder."
import os, secrets, shutil, subprocess, sys, tempfile
from pathlib import Path
import psutil
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

def tagged(tmpdir) -> list[psutil.Process]:
    "The processes started with TMPDIR `tmpdir` or a folder in it (their children inherit it): a test's own, whatever else runs here."
    out = []
    for p in psutil.process_iter():
        try:
            t = p.environ().get('TMPDIR', '')
            if p.pid != os.getpid() and (t == str(tmpdir) or t.startswith(f'{tmpdir}/')): out.append(p)
        except (psutil.Error, OSError): pass  # gone, or another user's
    return out

@pytest.fixture
def private_env():
    """Environment for the processes a test starts: a short private TMPDIR (Ray's session folder, Ray workers' scratch
    folders, kernel sockets all go there, and every process inherits it) and a private Ray token (Ray would otherwise
    write one to ~/.ray). Afterwards any process still carrying that TMPDIR is killed and the folder removed."""
    d = Path(tempfile.mkdtemp(prefix='rd-'))  # short: Ray's Unix socket paths under it must stay within 107 characters
    try: yield dict(TMPDIR=str(d), RAY_AUTH_MODE='token', RAY_AUTH_TOKEN=secrets.token_hex(32))
    finally:
        left = tagged(d)
        for p in left:
            try: p.kill()
            except psutil.Error: pass
        psutil.wait_procs(left, timeout=30)
        shutil.rmtree(d, ignore_errors=True)

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
