"""`resdepth run` on the real BreastMNIST file, then `resdepth book`, as a user runs them.

One small grid (2 depths x 2 seeds x 2 epochs) is run once per session (conftest's `e2e_grid`) and shared by the tests
below; none of them changes it. The book is rendered from a copy, in the background while the other tests run.
"""
import json, re, shutil, time
from html.parser import HTMLParser
import nbformat
import numpy as np
import pytest
from conftest import ROOT, E2E_GRID as GRID, E2E_IDS as IDS, run_cli, start_cli, chromium_dom
from resdepth.models import feature_map_size
from resdepth.stats import load_records

def visible(d): return [f for f in d.iterdir() if f.is_file() and not f.name.startswith('.')]

@pytest.fixture(scope='module')
def rendering(e2e_grid, tmp_path_factory):
    """`resdepth book` on a copy of the grid (the book writes its figures into the study's folder), started in the
    background as soon as this module's first test runs: (output folder, process). test_book_shows_the_grid waits for it."""
    out = tmp_path_factory.mktemp('e2e-book')
    runs = shutil.copytree(e2e_grid[0], out/'runs')
    p = start_cli('book', '--runs', runs, '--out', out/'book', '--project', ROOT)
    yield out, p
    if p.poll() is None: p.kill(); p.communicate()  # a run of a few tests that never waited for it

@pytest.fixture
def grid(e2e_grid, rendering): return e2e_grid

def test_each_cell_leaves_a_record_and_an_executed_notebook(grid):
    out, p = grid
    study = out/'e2e'
    assert sorted(f.name for f in study.iterdir() if not f.name.startswith('.')) == sorted([f'{i}.json' for i in IDS] + [f'{i}.ipynb' for i in IDS])
    for i in IDS:
        r = json.loads((study/f'{i}.json').read_text())
        assert r['status'] == 'ok' and r['cell_id'] == i
        assert r['config']['epochs'] == 2 and r['config']['dataset'] == 'breastmnist'
        assert r['epochs_run'] == 2 and len(r['history']) == 2 and r['best_epoch'] in (0, 1)
        assert set(r['metrics']) == {'accuracy', 'auc', 'balanced_accuracy', 'confusion_matrix'}
        assert np.array(r['metrics']['confusion_matrix']).sum() == r['n']['test'] == 156
        assert r['model']['feature_map'] == {1: 7, 2: 4}[r['config']['depth']]
        assert set(r['seconds']) == {'data', 'train', 'train_passes', 'eval', 'total'} and 0 < r['seconds']['train_passes'] <= r['seconds']['train']
        rate = r['n']['train'] * r['epochs_run'] / r['seconds']['train_passes']  # training images per second, passes only
        assert load_records(study).set_index('cell_id').images_per_second[i] == pytest.approx(rate)
        assert {'python', 'torch', 'fastai', 'resdepth'} <= set(r['environment'])
        nb = nbformat.read(study/f'{i}.ipynb', as_version=4)
        assert nb.metadata.papermill.parameters['depth'] == r['config']['depth']
        printed = ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))
        assert f"test accuracy {r['metrics']['accuracy']:.4f}" in printed
    assert p.stdout.count('accuracy') == len(IDS) and '[4/4]' in p.stdout and 'ETA' in p.stdout

def test_rerun_skips_every_finished_cell(grid, shared_data):
    out, _ = grid
    before = {f.name: f.stat().st_mtime_ns for f in visible(out/'e2e')}
    t0 = time.perf_counter()
    p = run_cli('run', *GRID, '--data-dir', shared_data, '--out', out)
    assert p.returncode == 0 and '4 of 4 cells done, 0 failed; nothing to run' in p.stdout, p.stdout + p.stderr
    assert {f.name: f.stat().st_mtime_ns for f in visible(out/'e2e')} == before
    print(f"rerun of a finished study: {time.perf_counter() - t0:.1f} s")

def test_other_protocol_is_refused_and_records_stay(grid, shared_data):
    out, _ = grid
    before = {f.name: f.read_bytes() for f in visible(out/'e2e')}
    p = run_cli('run', *GRID[:-1], '3', '--data-dir', shared_data, '--out', out)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert 'epochs=2' in p.stderr and 'epochs=3' in p.stderr
    assert {f.name: f.read_bytes() for f in visible(out/'e2e')} == before

class _Tables(HTMLParser):
    "Collect the text of every table cell inside the Table 7 block of a page."
    def __init__(self):
        super().__init__(); self.cells, self.depth, self.td = [], 0, False
    def handle_starttag(self, tag, attrs):
        if tag == 'div' and ('class', 'resdepth-table7') in attrs: self.depth = 1
        elif tag == 'div' and self.depth: self.depth += 1
        if tag in ('td', 'th') and self.depth: self.td = True; self.cells.append('')
    def handle_endtag(self, tag):
        if tag == 'div' and self.depth: self.depth -= 1
        if tag in ('td', 'th'): self.td = False
    def handle_data(self, data):
        if self.td: self.cells[-1] += data

class _Cells(HTMLParser):
    "Every table cell of a page, and its text with apostrophes made plain."
    def __init__(self):
        super().__init__(); self.cells, self.text, self.td = [], [], False
    def handle_starttag(self, tag, attrs):
        if tag in ('td', 'th'): self.td = True; self.cells.append('')
    def handle_endtag(self, tag):
        if tag in ('td', 'th'): self.td = False
    def handle_data(self, data):
        self.text.append(data)
        if self.td: self.cells[-1] += data
    @property
    def body(self): return ' '.join(' '.join(self.text).replace('\u2019', "'").split())

def has_row(cells, row): return any(cells[i:i + len(row)] == row for i in range(len(cells) - len(row) + 1))

PAPER_TABLE2 = [[7, 4, 2, 1], [16, 8, 4, 2], [32, 16, 8, 4], [56, 28, 14, 7]]  # Liu et al. 2024, Table 2: rows 28-224 px, blocks 1-4

def test_book_shows_the_grid(grid, rendering):
    (out, _), (where, p) = grid, rendering
    stdout, stderr = p.communicate(timeout=1800)
    assert p.returncode == 0, stdout + stderr
    assert re.search(r'rendered with (quarto|jupyter-book)', stdout)
    results = where/'book'/'book'/'results.html'
    assert (where/'book'/'index.html').exists() and results.exists()
    t = _Tables(); t.feed(chromium_dom(results))
    assert 'BreastMNIST - 28x28' in t.cells and 'Block 1' in t.cells and 'Block 2' in t.cells
    for depth in (1, 2):
        accs = [json.loads((out/'e2e'/f'breastmnist-28-d{depth}-s{s}.json').read_text())['metrics']['accuracy'] for s in (0, 1)]
        assert f"{np.mean(accs):.3f} ± {np.std(accs, ddof=1):.3f} (n=2)" in t.cells, t.cells
    methods = _Cells(); methods.feed(chromium_dom(where/'book'/'book'/'methods.html'))
    measured = [[feature_map_size(k, z) for k in (1, 2, 3, 4)] for z in (28, 64, 128, 224)]
    for z, row in zip((28, 64, 128, 224), measured): assert has_row(methods.cells, [f'{z}x{z}'] + [f'{m}x{m}' for m in row]), methods.cells
    verdict = 'agree' if measured == PAPER_TABLE2 else 'DO NOT agree'
    assert f"All 16 measured sizes {verdict} with the paper's Table 2." in methods.body, methods.body
