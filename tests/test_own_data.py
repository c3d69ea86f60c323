"""A researcher's own images, end to end, as the README's two commands run them: `resdepth data import` of a generated
`ImageFolder` tree (gray and colour PNGs of several shapes, uneven classes) and of a CSV, `resdepth search` on the
imported dataset (a race over sizes and depths, resumed by a second run), and `resdepth book --study NAME`, whose
search chapter and results chapters are checked in headless Chromium. Bad input to `data import` is refused in one
line with nothing written."""
import csv, json, re
from html.parser import HTMLParser
import numpy as np
import pytest
from PIL import Image
from conftest import ROOT, run_cli, run_clis, chromium_dom

CLASSES = {'benign': 14, 'malignant': 23, 'normal': 31}  # uneven, each enough for the stored 70/10/20 split
SHAPES = [(40, 30), (36, 36), (30, 48)]

def draw(rng, k:int, shape, colour:bool) -> Image.Image:
    "An image whose brightness says its class (so a network learns something in two epochs), with noise."
    w, h = shape
    x = np.clip(rng.normal(50 + 70 * k, 25, (h, w, 3) if colour else (h, w)), 0, 255).astype(np.uint8)
    if colour: x[..., 2] //= 2  # channels that differ: a colour image
    return Image.fromarray(x)

def make_tree(root, seed=0):
    "One sub-folder per class; every third image colour, the rest gray, in three shapes."
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(CLASSES.items()):
        (root/name).mkdir(parents=True)
        for i in range(n): draw(rng, k, SHAPES[i % 3], colour=i % 3 == 0).save(root/name/f'{name}_{i:03d}.png')
    return root

def make_csv(root, seed=1):
    "Gray images listed in a CSV with a split column, paths relative to the CSV."
    rng = np.random.default_rng(seed)
    (root/'img').mkdir(parents=True)
    rows = []
    for k, name in enumerate(('left', 'right')):
        for i in range(20):
            f = f'img/{name}_{i:02d}.png'
            draw(rng, k, SHAPES[i % 3], colour=False).save(root/f)
            rows.append(dict(path=f, label=name, split='train' if i < 14 else 'val' if i < 16 else 'test'))
    with open(root/'labels.csv', 'w', newline='') as fh:
        w = csv.DictWriter(fh, ['path', 'label', 'split']); w.writeheader(); w.writerows(rows)
    return root/'labels.csv'

def files(d): return sorted(p.name for p in d.rglob('*') if p.is_file())

@pytest.fixture(scope='module')
def own(tmp_path_factory):
    "The tree imported as `own` (28 and 64 px) and the CSV as `sides`: (data folder, import processes)."
    base = tmp_path_factory.mktemp('own')
    data = base/'data'
    a, b = run_clis(('data', 'import', 'own', make_tree(base/'tree'), '--sizes', '28', '64', '--data-dir', data),
                    ('data', 'import', 'sides', make_csv(base/'csv'), '--sizes', '28', '--data-dir', data), at_once=2)
    return data, a, b

def test_import_writes_medmnist_files_and_a_manifest(own):
    data, a, b = own
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert files(data) == ['own.json', 'own.npz', 'own_64.npz', 'sides.json', 'sides.npz']
    m = json.loads((data/'own.json').read_text())
    assert m['classes'] == sorted(CLASSES) and m['channels'] == 3 and m['task'] == 'multi-class'
    assert sum(m['counts'].values()) == sum(CLASSES.values())
    with np.load(data/'own_64.npz') as z:
        assert z['train_images'].shape[1:] == (64, 64, 3) and z['train_images'].dtype == np.uint8
        y = np.concatenate([z[f'{k}_labels'] for k in ('train', 'val', 'test')]).ravel()
        assert np.bincount(y).tolist() == list(CLASSES.values())  # every image kept, labels in class order
        assert {k: len(z[f'{k}_labels']) for k in ('train', 'val', 'test')} == m['counts']
        assert all(set(np.unique(z[f'{k}_labels'])) == {0, 1, 2} for k in ('val', 'test'))  # stratified: every class in every part
    s = json.loads((data/'sides.json').read_text())
    assert s['channels'] == 1 and s['task'] == 'binary-class' and s['counts'] == dict(train=28, val=4, test=8)
    with np.load(data/'sides.npz') as z: assert z['train_images'].shape == (28, 28, 28)

@pytest.fixture(scope='module')
def searched(own, tmp_path_factory):
    "`resdepth search` on `own`: 2 sizes x 2 depths raced over at most 3 seeds, 2 epochs a cell, then the same command again."
    data = own[0]
    runs = tmp_path_factory.mktemp('own-runs')
    cmd = ['search', '--datasets', 'own', '--depths', '1', '2', '--epochs', '2', '--first-seeds', '2', '--max-seeds', '3',
           '--data-dir', data, '--out', runs, '--workers', '2', '--no-fit-check']
    return runs, run_cli(*cmd), run_cli(*cmd)

def test_search_races_the_imported_dataset_and_resumes(searched):
    runs, first, again = searched
    assert first.returncode == 0, first.stdout + first.stderr
    study = runs/'own'
    s = json.loads((study/'search.json').read_text())
    assert s['finished'] and s['race_on'] == 'valid' and s['full_grid_cells'] == 12
    records = {p.stem: json.loads(p.read_text()) for p in study.glob('own-*.json')}
    ran = [c for r in s['races'] for rd in r['rounds'] for c in rd['cells']]
    assert sorted(ran) == sorted(records) and s['cells_run'] == len(records) >= 8  # round 1: 2 seeds of all 4 configurations
    assert all(r['status'] == 'ok' and r['config']['dataset'] == 'own' for r in records.values())
    for c in s['races'][0]['configs']:  # every value raced is the record's validation accuracy of its tested weights
        recs = [records[f"{c['cell_prefix']}-s{x}"] for x in c['seeds_run']]
        assert c['mean'] == pytest.approx(np.mean([r['history'][r['tested_epoch']]['valid_accuracy'] for r in recs]))
        assert c['flops'] == recs[0]['model']['flops'] and c['seconds'] > 0
    race = s['races'][0]
    assert {c['cell_prefix'] for c in race['configs']} == {f'own-{z}-d{k}' for z in (28, 64) for k in (1, 2)}
    status = {c['cell_prefix']: c['status'] for c in race['configs']}
    assert [k for k, v in status.items() if v == 'best'] == [race['answer']['best']]
    assert sorted(k for k, v in status.items() if v == 'not worse') == sorted(race['answer']['not_worse'])
    assert 'validation accuracy' in first.stdout and race['answer']['best'] in first.stdout
    assert re.search(rf"{s['cells_run']}\D+12\b", first.stdout), first.stdout  # cells run against the full grid's
    assert again.returncode == 0 and json.loads((study/'search.json').read_text())['cells_run'] == s['cells_run'], again.stdout + again.stderr
    assert {p.stem: p.stat().st_mtime_ns for p in study.glob('own-*.json')} == {k: (study/f'{k}.json').stat().st_mtime_ns for k in records}

class Page(HTMLParser):
    "Text and image sources of a rendered page."
    def __init__(self):
        super().__init__(); self.imgs, self.text = [], []
    def handle_starttag(self, tag, attrs):
        if tag == 'img': self.imgs.append(dict(attrs).get('src', ''))
    def handle_data(self, data): self.text.append(data)

def test_book_of_the_searched_dataset(own, searched, tmp_path):
    runs = searched[0]
    p = run_cli('book', '--study', 'own', '--runs', runs, '--out', tmp_path/'book', '--project', ROOT, '--data-dir', own[0])
    assert p.returncode == 0, p.stdout + p.stderr
    s = json.loads((runs/'own'/'search.json').read_text())
    pg = Page(); pg.feed(chromium_dom(tmp_path/'book'/'book'/'search.html'))
    body = ' '.join(' '.join(pg.text).split())
    best = next(c for c in s['races'][0]['configs'] if c['status'] == 'best')
    assert f"The best configuration is block {best['depth']} @ {best['size']} px" in body, body
    assert f"{s['cells_run']} cells of the full grid's {s['full_grid_cells']}" in body.replace('’', "'") and 'validation accuracy' in body
    pics = [tmp_path/'book'/'book'/src for src in pg.imgs if not src.startswith(('http', 'data:'))]
    assert pics and all(f.stat().st_size > 5000 for f in pics)  # the race drawn, not an empty image
    depth = Page(); depth.feed(chromium_dom(tmp_path/'book'/'book'/'depth.html'))
    assert 'own' in ' '.join(depth.text)

@pytest.mark.parametrize('case, needle', [
    ('missing', 'does not exist'),
    ('too-few', 'needs at least'),
    ('csv-columns', 'label'),
])  # each command starts the library (seconds): test_import.py checks every refusal through the Python API
def test_bad_import_is_one_line_and_writes_nothing(tmp_path, case, needle):
    src = tmp_path/'src'
    if case == 'too-few':
        make_tree(src); [p.unlink() for p in sorted((src/'benign').iterdir())[3:]]
    if case == 'csv-columns':
        src.mkdir(); (src/'x.csv').write_text('file,class\na.png,1\n'); src = src/'x.csv'
    data = tmp_path/'data'; data.mkdir()
    p = run_cli('data', 'import', 'mine', src, '--sizes', '28', '--data-dir', data)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and 'Traceback' not in p.stderr, p.stderr
    assert needle in p.stderr.lower(), p.stderr
    assert files(data) == []
