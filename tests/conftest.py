"""Shared fixtures: the real MedMNIST files beside the project, the repo root, a CLI runner, a private temporary folder,
and the runs that several test files read, each made ONCE per session (`e2e_grid`, `quick_offline`). Those folders are
read-only for their readers: a test that must change records copies them into its own tmp_path first (`copy_cells`).
Session fixtures are made when a test first asks for them, so any order of the tests (or one file alone) works."""
import os, secrets, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
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

def start_cli(*args, env=None) -> subprocess.Popen:
    "Start the installed `resdepth` command in the background, its output piped (wait for it with `communicate()`)."
    exe = Path(sys.executable).parent/'resdepth'
    return subprocess.Popen([str(exe), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})

def run_clis(*argvs, env=None, at_once=3) -> list[subprocess.CompletedProcess]:
    "Run several `resdepth` commands, each in its own process as `run_cli` does, `at_once` side by side; results in order."
    with ThreadPoolExecutor(at_once) as pool: return list(pool.map(lambda a: run_cli(*a, env=env), argvs))

E2E_GRID = ['--study', 'e2e', '--datasets', 'breastmnist', '--sizes', '28', '--depths', '1', '2', '--seeds', '0', '1', '--epochs', '2']
E2E_IDS = [f'breastmnist-28-d{d}-s{s}' for d in (1, 2) for s in (0, 1)]

@pytest.fixture(scope='session')
def e2e_grid(tmp_path_factory, shared_data):
    """`resdepth run` of one small grid on the real BreastMNIST file (2 depths x 2 seeds x 2 epochs, study `e2e`), as a
    user runs it: (results root, finished process). test_end_to_end checks it; test_protocol and test_reliability copy
    one of its records into a study folder of their own instead of training that cell again."""
    out = tmp_path_factory.mktemp('e2e-runs')
    p = run_cli('run', *E2E_GRID, '--data-dir', shared_data, '--out', out)
    assert p.returncode == 0, p.stdout + p.stderr
    return out, p

def copy_cells(src:Path, dst:Path, *cell_ids) -> Path:
    "Copy the records and executed notebooks of `cell_ids` from a shared study folder `src` into a new study folder `dst`."
    dst.mkdir(parents=True)
    for c in cell_ids:
        for ext in ('json', 'ipynb'): shutil.copy2(src/f'{c}.{ext}', dst/f'{c}.{ext}')
    return dst

REFUSED = 'http://127.0.0.1:9'  # nothing listens here: any download fails at once

def offline_env(**extra):
    "The environment of a user with no data folder set and no working network."
    env = {k: v for k, v in os.environ.items() if k != 'RESDEPTH_DATA'}
    return {**env, 'http_proxy': REFUSED, 'https_proxy': REFUSED, 'HTTP_PROXY': REFUSED, 'HTTPS_PROXY': REFUSED,
            'no_proxy': '', 'NO_PROXY': '', **extra}

QUICK_SHORT = ['--depths', '1', '--seeds', '0', '--epochs', '1']  # the quick study (BreastMNIST 28 px) cut to one cell of one epoch

@pytest.fixture(scope='session')
def quick_offline(tmp_path_factory):
    """The README's first command, `resdepth run`, shortened to one cell of one epoch, run once from an empty folder
    without a data folder or a network: (that folder, finished process). test_offline_default and test_docs check it."""
    cwd = tmp_path_factory.mktemp('quick-offline')
    exe = Path(sys.executable).parent/'resdepth'
    p = subprocess.run([str(exe), 'run', *QUICK_SHORT], cwd=cwd, capture_output=True, text=True, env=offline_env(), timeout=900)
    return cwd, p

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

LAYOUT = r"""<script>
window.addEventListener('load', () => {
  // what a reader at a 1280 px window sees: numbers that wrap inside a table cell, tables wider than their column, and
  // whether each image of the heat-map blocks shows something (more than a few distinct colours)
  const out = {tables: 0, wrapped: [], overflow: [], heatmaps: []};
  for (const t of document.querySelectorAll('table')) {
    const box = t.getBoundingClientRect();
    if (box.width === 0) continue;
    out.tables++;
    for (const td of t.querySelectorAll('td, th')) {  // every number (a mean with its ± part counts as one) on one line
      const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
      for (let node = walk.nextNode(); node; node = walk.nextNode()) {
        for (const m of node.data.matchAll(/[-+−]?\d[\d.,]*(?:\s*±\s*\d[\d.,]*)?%?/g)) {
          const range = document.createRange(); range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
          const rects = [...range.getClientRects()].filter(r => r.width > 0);
          const size = parseFloat(getComputedStyle(node.parentElement).fontSize);
          if (rects.some(r => r.top > rects[0].top + 0.8 * size)) out.wrapped.push(m[0]);
        }
      }
    }
    const column = t.parentElement.getBoundingClientRect();
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(t).overflowX) || ['auto', 'scroll'].includes(getComputedStyle(t.parentElement).overflowX);
    if (box.right > column.right + 1 || box.right > window.innerWidth || (t.scrollWidth > t.clientWidth + 1 && !scrolls))
      out.overflow.push((t.querySelector('th, td') || t).textContent.trim().slice(0, 40));
  }
  for (const block of document.querySelectorAll('.resdepth-heatmaps')) {
    for (const img of block.querySelectorAll('img')) {
      const c = document.createElement('canvas'); c.width = 64; c.height = 64;
      const g = c.getContext('2d'); g.drawImage(img, 0, 0, 64, 64);
      const px = g.getImageData(0, 0, 64, 64).data, colours = new Set();
      for (let i = 0; i < px.length; i += 4) colours.add((px[i] >> 3) + ',' + (px[i + 1] >> 3) + ',' + (px[i + 2] >> 3));
      out.heatmaps.push({metric: block.dataset.metric, dataset: img.dataset.dataset, width: img.naturalWidth, colours: colours.size});
    }
  }
  document.body.setAttribute('data-resdepth-layout', JSON.stringify(out));
});
</script>"""

def chromium_dom(html: Path, layout: bool = False, window: str = '1280,900') -> str:
    """The DOM of a page after headless Chromium has loaded it in a `window` of that size. With `layout`, the page is
    loaded from a copy beside it that measures its tables and heat maps (`LAYOUT`); `page_layout` reads the result."""
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe is None: pytest.fail("headless Chromium is needed for the book test: apt-get install chromium")
    if layout:
        checked = html.with_name(f'.layout-{html.name}')
        checked.write_text(html.read_text().replace('</body>', LAYOUT + '</body>'))
        html = checked
    try:
        with tempfile.TemporaryDirectory(prefix='resdepth-chromium-') as profile:  # a fresh profile: no lock from another run
            p = subprocess.run([exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                                f'--window-size={window}', '--virtual-time-budget=10000',
                                f'--user-data-dir={profile}', '--dump-dom', html.as_uri()],
                               capture_output=True, text=True, timeout=120)
    finally:
        if layout: html.unlink(missing_ok=True)
    assert p.returncode == 0 and '<body' in p.stdout, p.stderr
    return p.stdout

def page_layout(dom: str) -> dict:
    "What `LAYOUT` measured in a page loaded with `chromium_dom(html, layout=True)`."
    import html as h, json, re
    m = re.search(r'data-resdepth-layout="([^"]*)"', dom)
    assert m, 'the page did not finish loading (no layout measured)'
    return json.loads(h.unescape(m.group(1)))
