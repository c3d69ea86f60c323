"""The full-study path on the three real 28 px files (Breast, Retina, Pneumonia): 4 depths x 3 seeds each, one epoch,
weights kept; then the book must show Tables 4-7, Figures 1-3, feature maps, cost and replication for what exists."""
import json, re
from html.parser import HTMLParser
import pytest
from conftest import ROOT, run_cli, chromium_dom

SETS = ('breastmnist', 'retinamnist', 'pneumoniamnist')

class Page(HTMLParser):
    "Table cells, image sources and text of a rendered page."
    def __init__(self):
        super().__init__(); self.cells, self.imgs, self.text, self._td = [], [], [], False
    def handle_starttag(self, tag, attrs):
        if tag in ('td', 'th'): self._td = True; self.cells.append('')
        if tag == 'img': self.imgs.append(dict(attrs).get('src', ''))
    def handle_endtag(self, tag):
        if tag in ('td', 'th'): self._td = False
    def handle_data(self, data):
        self.text.append(data)
        if self._td: self.cells[-1] += data

def page(book, name):
    p = Page(); p.feed(chromium_dom(book/'book'/'book'/f'{name}.html')); p.body = ' '.join(' '.join(p.text).split())
    return p

@pytest.fixture(scope='module')
def book(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp('study')
    r = run_cli('run', '--study', 'three', '--datasets', *SETS, '--sizes', '28', '--depths', '1', '2', '3', '4',
                '--seeds', '0', '1', '2', '--epochs', '1', '--save-model', '--data-dir', shared_data, '--out', out/'runs')
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli('book', '--runs', out/'runs', '--study', 'three', '--out', out/'book', '--project', ROOT,
                env={'RESDEPTH_DATA': str(shared_data)})
    assert r.returncode == 0, r.stdout + r.stderr
    return out

def test_the_study_leaves_36_records_and_weights(book):
    study = book/'runs'/'three'
    assert len(list(study.glob('*.json'))) == 36 and len(list(study.glob('*.pt'))) == 36
    r = run_cli('status', str('three'), '--datasets', *SETS, '--sizes', '28', '--depths', '1', '2', '3', '4',
                '--seeds', '0', '1', '2', '--out', book/'runs')
    assert re.search(r'^all\s+36\s+0\s+0\s+0\s+0$', r.stdout, re.M), r.stdout

def test_depth_chapter_has_figure_1_and_table_4(book):
    p = page(book, 'depth')
    assert any('figure1' in s or s.startswith('data:image/png') or s.endswith('.png') for s in p.imgs), p.imgs
    for name in ('BreastMNIST', 'RetinaMNIST', 'PneumoniaMNIST'): assert p.cells.count(name) >= 3 * 2  # 3 depths, accuracy and AUC
    recs = [json.loads((book/'runs'/'three'/f'breastmnist-28-d1-s{s}.json').read_text())['metrics']['accuracy'] for s in range(3)]
    assert any(c.startswith(f"{sum(recs) / 3:.3f} ± ") for c in p.cells)
    assert (book/'runs'/'three'/'figures'/'figure1.png').exists()

def test_results_chapter_has_figure_3_and_tables_6_and_7(book):
    p = page(book, 'results')
    for name in ('BreastMNIST', 'RetinaMNIST', 'PneumoniaMNIST'): assert f'{name} - 28x28' in p.cells
    assert 'Table 6' in p.body and 'Table 7' in p.body
    assert sum(c.endswith('(n=3)') for c in p.cells) == 2 * 12  # 12 configurations, accuracy and AUC
    assert (book/'runs'/'three'/'figures'/'figure3.png').exists() and (book/'runs'/'three'/'figures'/'figure2.png').exists()

def test_feature_map_cost_and_replication_chapters(book):
    fm = page(book, 'featuremaps')
    assert len(fm.imgs) >= 3 and 'no saved weights' not in fm.body
    cost = page(book, 'cost')
    assert 'frontier' in cost.body and 'cheapest' in cost.body.lower() and '11,171,266' in cost.cells
    rep = page(book, 'replication')
    assert '12 of 128 published configurations run' in rep.body and '1244 of 1280 cells missing' in rep.body
    assert rep.cells.count('not run') > 100

def test_performance_appendix_shows_every_benchmark_file(book):
    files = sorted((ROOT/'bench').glob('*.json'))
    assert files, 'bench/ holds no benchmark figures'
    p = page(book, 'performance')
    for f in files:
        r = json.loads(f.read_text())
        assert f.name in p.body and f"{r['matmul_gflops']:.0f} GFLOP/s" in p.body
        assert [str(round(x['resdepth'])) in p.cells for x in r['throughput']] == [True] * len(r['throughput'])
        assert f"{100 * r['overhead']['warm']['overhead_share']:.1f}%" in p.cells
