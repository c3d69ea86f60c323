"""The full-study path on the three real 28 px files (Breast, Retina, Pneumonia): 4 depths x 3 seeds each, one epoch,
weights kept; then the book must show Tables 4-7, Figures 1-3, feature maps, cost and replication for what exists.
The four companion studies run into the same results root, shortened (one to two seeds, one to two epochs): three on
small generated files in the official formats, `inputsize` on the real BreastMNIST file enlarged; the same book render
must show each companion chapter and the five-study comparison. Each run uses two local workers of one thread each
(`--workers 2`, as a user with many cells runs them) and skips the fit check (`WORKERS`); each chapter page is loaded
once (`pages`)."""
import json, re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, run_cli, start_cli, chromium_dom, page_layout
from resdepth.answers import answers
from resdepth.cells import config_anchor
from resdepth.stats import (MARGIN, UNTESTABLE, cheapest_adequate, comparisons, dataset_name, load_records, replicate_significance,
                            show_comparisons, table7)

SETS = ('breastmnist', 'retinamnist', 'pneumoniamnist')

class Page(HTMLParser):
    "Table cells, image sources and text (not scripts) of a rendered page."
    def __init__(self):
        super().__init__(); self.cells, self.imgs, self.text, self._td, self._script = [], [], [], False, False
    def handle_starttag(self, tag, attrs):
        if tag in ('td', 'th'): self._td = True; self.cells.append('')
        if tag == 'img': self.imgs.append(dict(attrs).get('src', ''))
        if tag in ('script', 'style'): self._script = True
    def handle_endtag(self, tag):
        if tag in ('td', 'th'): self._td = False
        if tag in ('script', 'style'): self._script = False
    def handle_data(self, data):
        if self._script: return
        self.text.append(data)
        if self._td: self.cells[-1] += data

def html_file(book, name):
    "The rendered page of chapter `name` ('index', a chapter of book/, or 'reference/<page>')."
    return book/'book'/('index.html' if name == 'index' else f'{name}.html' if '/' in name else f'book/{name}.html')

def page(book, name):
    "A rendered chapter as Chromium shows it at 1280 px: its table cells, images and text, its DOM (`soup`) and `layout`."
    dom = chromium_dom(html_file(book, name), layout=True)
    p = Page(); p.feed(dom); p.body = ' '.join(' '.join(p.text).replace('\u2019', "'").split())
    p.soup, p.layout = BeautifulSoup(dom, 'html.parser'), page_layout(dom)
    return p

def has_row(cells, row):
    "Whether `row` (values in order) appears as consecutive cells of a rendered table."
    row, cells = [str(v).strip() for v in row], [c.strip() for c in cells]
    return any(cells[i:i + len(row)] == row for i in range(len(cells) - len(row) + 1))

COMPANIONS = {  # study -> extra options of its shortened CI run
    'xu2024': ['--seeds', '0', '1', '--epochs', '2'],
    'kittipipatthanapong2023': ['--seeds', '0', '--epochs', '1'],
    'hudson2024': ['--seeds', '0', '--epochs', '1'],
    'inputsize': ['--datasets', 'breastmnist', '--sizes', '32', '64', '128', '--seeds', '0', '1', '--epochs', '1'],
}
NOT_BUILDABLE = {'chestmnist-nofinding-28-plaincnn-d3-s0': 2, 'chestmnist-nofinding-28-plaincnn-d4-s0': 2,
                 'chestmnist-nofinding-64-plaincnn-d4-s0': 3, 'chestmnist-nofinding-128-plaincnn-d4-s0': 3}  # cell -> last block with a map

def generated_data(root):
    "Small CIFAR-10/100 and Fashion-MNIST in torchvision's layout and ChestMNIST at all four sizes, in the official formats."
    from resdepth.vision import write_vision
    from resdepth.data import write_medmnist
    for name in ('cifar10', 'cifar100', 'fashionmnist'):
        write_vision(name, root, n_train=500 if name == 'cifar100' else 150, n_test=100 if name == 'cifar100' else 50)
    for size in (28, 64, 128, 224): write_medmnist('chestmnist', root, size, n=64)
    return root

def records(book, study): return {p.stem: json.loads(p.read_text()) for p in (book/'runs'/study).glob('*.json')}

# two cells side by side, one thread each: both cores stay busy through a run, and no cell's threads wait on a busy core;
# no fit check: its probes take a minute or more for these studies (kittipipatthanapong2023, inputsize at 128 px), and the
# check itself is test_plan's (test_end_to_end and test_docs run with it, as a user does)
WORKERS = ['--workers', '2', '--no-fit-check']

@pytest.fixture(scope='module')
def trained(tmp_path_factory, shared_data):
    """The five studies run into one results root, then `resdepth book` started on it in the background: (folder, book
    process). The book only reads the records (and adds figures beside them), so the tests that check records and runs
    (`root`) go on while it renders; those that read the rendered book wait for it (`book`)."""
    out = tmp_path_factory.mktemp('study')
    r = run_cli('run', '--study', 'three', '--datasets', *SETS, '--sizes', '28', '--depths', '1', '2', '3', '4',
                '--seeds', '0', '1', '2', '--epochs', '1', '--save-model', *WORKERS, '--data-dir', shared_data, '--out', out/'runs')
    assert r.returncode == 0, r.stdout + r.stderr
    gen = generated_data(out/'generated')
    for study, opts in COMPANIONS.items():
        data = ['--data-dir', shared_data] if study == 'inputsize' else ['--data-dir', gen, '--no-verify']
        r = run_cli('run', '--study', study, *opts, *WORKERS, *data, '--out', out/'runs')
        assert r.returncode == 0, study + r.stdout + r.stderr
    rendering = start_cli('book', '--runs', out/'runs', '--study', 'three', '--out', out/'book', '--project', ROOT,
                          env={'RESDEPTH_DATA': str(shared_data)})
    yield out, rendering
    if rendering.poll() is None: rendering.kill(); rendering.communicate()  # a run of a few tests that never waited for it

@pytest.fixture(scope='module')
def root(trained): return trained[0]

@pytest.fixture(scope='module')
def book(trained):
    "The results root once `resdepth book` has rendered it into book/."
    out, rendering = trained
    stdout, stderr = rendering.communicate(timeout=1800)
    assert rendering.returncode == 0, stdout + stderr
    return out

CHAPTERS = ('index', 'depth', 'results', 'featuremaps', 'cost', 'replication', 'performance', 'xu2024', 'kittipipatthanapong2023',
            'hudson2024', 'inputsize', 'synthesis', 'cells', 'reference/stats')

@pytest.fixture(scope='module')
def pages(book):
    """`pages(name)`: the rendered chapter `name` as headless Chromium shows it. Every chapter the tests read is loaded
    once, three at a time, as soon as the book exists; a page that fails to load fails only the tests that read it."""
    with ThreadPoolExecutor(3) as pool:
        loading = {name: pool.submit(page, book, name) for name in CHAPTERS}
        yield lambda name: loading[name].result()

def test_the_study_leaves_36_records_and_weights(root):
    study = root/'runs'/'three'
    assert len(list(study.glob('*.json'))) == 36 and len(list(study.glob('*.pt'))) == 36
    r = run_cli('status', str('three'), '--datasets', *SETS, '--sizes', '28', '--depths', '1', '2', '3', '4',
                '--seeds', '0', '1', '2', '--out', root/'runs')
    assert re.search(r'^total\s+36\s+36\s+0\s+0\s+0\s+0$', r.stdout, re.M) and 'nothing left to run' in r.stdout, r.stdout

def test_generated_files_are_refused_without_no_verify(root):
    r = run_cli('run', '--study', 'hudson2024', '--seeds', '5', '--epochs', '1', '--data-dir', root/'generated', '--out', root/'other')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'chestmnist.npz is damaged or not the official file' in r.stderr and '02c8a6516a18b556561a56cbdd36c4a8' in r.stderr
    assert not (root/'other'/'hudson2024').exists() or not list((root/'other'/'hudson2024').glob('*.json'))

def test_companion_studies_leave_their_records(root):
    xu, kit, hud, size = (records(root, s) for s in COMPANIONS)
    assert sorted(xu) == [f'cifar10-32-{a}d4-s{s}' for a in ('', 'resnet50-') for s in (0, 1)]
    assert all(r['status'] == 'ok' and r['data_verified'] is False and len(r['history']) == 2 for r in xu.values())
    assert len(kit) == 15 and {r['config']['arch'] for r in kit.values()} == {'alexnet', 'vgg19', 'resnet18', 'resnet34', 'resnet50'}
    assert {r['model']['params'] for r in kit.values() if r['config']['arch'] == 'alexnet' and r['config']['dataset'] == 'cifar10'} == {57_044_810}
    assert all(r['status'] == 'ok' and r['config']['bs'] == 16 and r['config']['schedule'] == 'cosine' for r in kit.values())
    assert len(size) == 12 and all(r['data_verified'] is True and r['config']['resize_from'] == 28 for r in size.values())
    flops = {r['config']['size']: r['model']['flops'] for r in size.values() if r['config']['arch'] == 'resnet50'}
    assert sorted(flops) == [32, 64, 128] and 3.9 < flops[64] / flops[32] < 4.1 and 3.9 < flops[128] / flops[64] < 4.1

def test_hudson_marks_the_collapsing_combinations_instead_of_failing(root):
    hud = records(root, 'hudson2024')
    assert len(hud) == 16
    bad = {k: r for k, r in hud.items() if r['status'] != 'ok'}
    assert sorted(bad) == sorted(NOT_BUILDABLE)
    for k, r in bad.items():
        assert r['status'] == 'not_buildable' and f"collapses after block {NOT_BUILDABLE[k]} of" in r['reason']
        assert (root/'runs'/'hudson2024'/f'{k}.ipynb').exists()
    r = run_cli('run', '--study', 'hudson2024', *COMPANIONS['hudson2024'], '--data-dir', root/'generated', '--no-verify', '--out', root/'runs')
    assert r.returncode == 0 and '16 of 16 cells done, 0 failed; nothing to run' in r.stdout, r.stdout + r.stderr

def test_depth_chapter_has_figure_1_and_table_4(book, pages, shared_data):
    p = pages('depth')
    shown = show_comparisons(comparisons(load_records(book/'runs'/'three'), 'depth', data=shared_data))
    assert len(shown) == 3 * 3  # blocks 1-3 against block 4 in each dataset
    for row in shown.itertuples(index=False): assert has_row(p.cells, row), row  # marks with their direction, computed here
    assert any('figure1' in s or s.startswith('data:image/png') or s.endswith('.png') for s in p.imgs), p.imgs
    for name in ('BreastMNIST', 'RetinaMNIST', 'PneumoniaMNIST'): assert p.cells.count(name) >= 3 * 2  # 3 depths, accuracy and AUC
    recs = [json.loads((book/'runs'/'three'/f'breastmnist-28-d1-s{s}.json').read_text())['metrics']['accuracy'] for s in range(3)]
    assert any(c.startswith(f"{sum(recs) / 3:.3f} ± ") for c in p.cells)
    assert (book/'runs'/'three'/'figures'/'figure1.png').exists()

def test_results_chapter_has_figure_3_and_tables_6_and_7(book, pages, shared_data):
    p = pages('results')
    df = load_records(book/'runs'/'three')
    for name in ('BreastMNIST', 'RetinaMNIST', 'PneumoniaMNIST'): assert f'{name} - 28x28' in p.cells
    t7 = table7(df, bold='{}')
    for label, row in t7.iterrows(): assert has_row(p.cells, [label, *row]), (label, list(row))  # Table 7, recomputed
    assert sum(c.endswith('(n=3)') for c in p.cells) == 2 * 12  # 12 configurations, accuracy and AUC
    t6 = show_comparisons(comparisons(df, 'both', data=shared_data))
    for row in t6.itertuples(index=False): assert has_row(p.cells, row), row  # Table 6, recomputed
    assert ('No combination has a higher mean accuracy than the reference.' in p.body) == t6.empty
    assert (book/'runs'/'three'/'figures'/'figure3.png').exists() and (book/'runs'/'three'/'figures'/'figure2.png').exists()

def test_feature_map_cost_and_replication_chapters(book, pages):
    fm = pages('featuremaps')
    assert len(fm.imgs) >= 3 and 'no saved weights' not in fm.body
    cost = pages('cost')
    assert 'frontier' in cost.body and '11,171,266' in cost.cells and f'above −{MARGIN:g}' in cost.body
    df = load_records(book/'runs'/'three')
    best = cheapest_adequate(df)
    assert sorted(best.dataset) == sorted(SETS)
    saved = (100 * best.flops_saved).round(1).astype(str) + '%'
    for r, pct in zip(best.itertuples(), saved):  # the cheapest configuration shown non-inferior, and its saving, computed from the records
        assert has_row(cost.cells, [dataset_name(r.dataset), f'block {r.depth} @ {r.size} px', f'{r.mean:.3f} ({r.n})']), r
        diff = f'{r.diff:+.3f}' if r.ci_low != r.ci_low else f'{r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]'
        assert has_row(cost.cells, [pct, diff, 'non-inferior']), (r, pct, diff)
    rep = pages('replication')
    assert '12 of 128 published configurations run' in rep.body and '1244 of 1280 cells missing' in rep.body
    assert rep.cells.count('not run') > 100
    v = replicate_significance(df).verdict.value_counts()
    assert ', '.join(f'{v.get(s, 0)} {s}' for s in ('agree', 'disagree', UNTESTABLE, 'not run')) + f' (of {v.sum()} calls).' in rep.body

def test_performance_appendix_shows_every_benchmark_file(book, pages):
    files = sorted((ROOT/'bench').glob('*.json'))
    assert files, 'bench/ holds no benchmark figures'
    p = pages('performance')
    for f in files:
        r = json.loads(f.read_text())
        assert f.name in p.body and ('throughput' in r or 'memory' in r or 'renders' in r), f.name
        if 'throughput' in r:  # `resdepth bench`: speed, runner overhead, workers
            assert f"{r['matmul_gflops']:.0f} GFLOP/s" in p.body
            assert [str(round(x['resdepth'])) in p.cells for x in r['throughput']] == [True] * len(r['throughput'])
            assert f"{100 * r['overhead']['warm']['overhead_share']:.1f}%" in p.cells
        if 'memory' in r:  # `resdepth bench --memory`: each cell's peak host memory and the normalisation's share
            assert [f"{c['peak_rss_bytes'] / 1e9:.2f} GB" in p.cells for c in r['memory']['cells']] == [True] * len(r['memory']['cells'])
            assert f"{r['normalise']['share']:.2%}" in p.cells
        if 'renders' in r:  # `resdepth bench --book`: first render, unchanged rerender, rerender after one new record
            assert [f"{x['seconds']:.1f}" in p.cells for x in r['renders'].values()] == [True] * len(r['renders'])
            verdict = 'met' if r['met']['unchanged_seconds'] else 'not met'
            assert f"target of at most {r['targets']['unchanged_seconds']:g} s: {verdict}." in p.body
            assert ('curve' not in r) or f"{r['curve']['seconds']:.3f} s per cell" in p.body

def test_companion_chapters_show_ours_beside_the_papers(book, pages):
    xu = pages('xu2024')
    acc = [r['metrics']['accuracy'] for r in records(book, 'xu2024').values() if r['config']['arch'] == 'resnet18']
    mean = sum(acc) / 2
    assert any(c.startswith(f'{mean:.3f} ± ') and c.endswith('(n=2)') for c in xu.cells), xu.cells
    assert '0.8294' in xu.cells and '0.7604' in xu.cells and '1.8464' in xu.cells and any(s.startswith('data:image/png') or s.endswith('.png') for s in xu.imgs)
    kit = pages('kittipipatthanapong2023')
    for pub in ('89.4', '93.7', '40.0', '65.6'): assert pub in kit.cells
    assert '57.0' in kit.cells and '20.0' in kit.cells and sum(c.endswith('(n=1)') for c in kit.cells) == 15
    hud = pages('hudson2024')
    for k, b in NOT_BUILDABLE.items():
        size = int(k.split('-')[2]); assert f'not buildable: a {size}x{size} map collapses after block {b} of {k[-4]}' in hud.cells
    combos = {(r['config']['size'], r['config']['depth']): r['status'] for r in records(book, 'hudson2024').values()}
    n_bad = sum(s == 'not_buildable' for s in combos.values())
    assert 'not buildable: a 128x128 map collapses after block 3 of 4' in hud.cells
    assert f'{n_bad} of {len(combos)} size-depth combinations are not buildable' in hud.body  # counted from the records
    size = pages('inputsize')
    assert 'FLOPs exponent' in size.cells and '32 → 64' in size.cells and '64 → 128' in size.cells
    assert sum(c == 'BreastMNIST' for c in size.cells) >= 2 * 3 + 2 * 2 + 2  # accuracy rows, size steps, exponents

def test_closing_chapter_sets_five_studies_side_by_side(book, pages):
    p = pages('synthesis')
    for s in ('three', *COMPANIONS): assert s in p.cells, s
    assert 'no records' not in p.cells and 'No records yet' not in p.body
    assert 'not varied' in p.cells  # xu2024 and kittipipatthanapong2023 use one size
    assert any(c.endswith(' of 3') for c in p.cells)  # the main study: block 4 against block 1 in each of three datasets

def test_front_page_opens_with_the_answers(book, pages):
    p = pages('index')
    want = answers(load_records(book/'runs'/'three'), 'three')  # recomputed here from the records
    block = p.soup.select_one('.resdepth-answers')
    assert block is not None and block['data-study'] == 'three'
    shown = {d['data-dataset']: ' '.join(d.get_text().split()) for d in block.select('.resdepth-answer')}
    assert list(shown) == list(want) and sorted(shown) == sorted(SETS), shown
    for d, a in want.items():
        t, b, r, c = shown[d], a['best'], a['reference'], a['cheapest']
        assert f"Best: block {b['depth']} @ 28 px, mean test accuracy {b['mean']:.3f} ± {b['half']:.3f} (n=3)" in t, t
        for e in a['not_worse']: assert f"block {e['depth']} @ 28 px ({e['mean']:.3f})" in t, (e, t)
        assert f"Reference (block 4 @ 28 px, the largest size run): {r['mean']:.3f} ± {r['half']:.3f} (n=3)" in t, t
        if (c['size'], c['depth']) == (r['size'], r['depth']): assert 'Cheapest adequate: the reference itself' in t, t
        else: assert f"Cheapest adequate: block {c['depth']} @ 28 px, {c['mean']:.3f}" in t and f"{100 * c['flops_saved']:.0f}% fewer FLOPs" in t, t
        assert "Missing: complete: all 12 cells ran (of the grid its records imply" in t, t
    text = ' '.join(p.soup.select_one('main, article, body').get_text().split())
    assert text.index('Best: block') < text.index('This book is produced by')  # the answers come first

def test_heat_maps_of_accuracy_auc_and_the_difference_from_the_paper(book, pages):
    results = pages('results')
    for metric in ('accuracy', 'auc'):
        got = [m for m in results.layout['heatmaps'] if m['metric'] == metric]
        assert sorted(m['dataset'] for m in got) == sorted(SETS), results.layout['heatmaps']
        assert all(m['width'] > 100 and m['colours'] > 5 for m in got), got  # drawn, not blank
    diff = [m for m in pages('replication').layout['heatmaps'] if m['metric'] == 'difference']
    assert sorted(m['dataset'] for m in diff) == sorted(SETS) and all(m['colours'] > 5 for m in diff), diff
    links = [a['href'] for a in results.soup.select('.resdepth-figure-files a')]
    assert any(h.endswith('heatmap-auc-retinamnist.pdf') for h in links) and any(h.endswith('figure3.png') for h in links), links
    missing = [h for h in links if not (html_file(book, 'results').parent/h).resolve().is_file()]
    assert not missing, missing

def test_table_means_link_to_their_seeds_and_each_cell_to_its_page(book, pages):
    res, cells = pages('results'), pages('cells')
    hrefs = {a['href'] for a in res.soup.select('table a[href*="cells.html#"]')}
    want = {config_anchor(d, 28, k) for d in SETS for k in (1, 2, 3, 4)}
    assert {h.split('#')[1] for h in hrefs} == want and all(h.startswith('cells.html#') for h in hrefs), hrefs
    assert want <= {t['id'] for t in cells.soup.find_all(id=True)}
    first = cells.soup.find(id=config_anchor('breastmnist', 28, 2)).find('a', href=True)  # the configuration's first seed
    assert first.get_text() == 'breastmnist-28-d2-s0'
    cell = (html_file(book, 'cells').parent/first['href']).resolve()
    text = cell.read_text()
    assert text.count('data:image/png;base64,') == 1 and text.index('data:image/png') > text.rindex('write_json')  # its curve, after the record
    assert f"cells.html#{config_anchor('breastmnist', 28, 2)}" in text  # and back to its configuration

def test_reference_appendix_and_titles_without_markup(book, pages):
    ref = pages('reference/stats')
    assert re.search(r'def\s+load_records\s*\(', ref.body) and 'one row each' in ref.body
    side = ' '.join(pages('index').soup.select_one('nav.bd-links').get_text(' ').split())
    assert 'Appendices Cells Performance' in side and 'Library reference Core' in side and 'Statistics' in side, side
    for n in CHAPTERS:
        heads = [pages(n).soup.title.get_text(), *(h.get_text() for h in pages(n).soup.select('h1, h2, nav.bd-links a'))]
        assert not [h for h in heads if '{#' in h or '{.' in h], (n, heads)

def test_no_table_wraps_a_number_or_overflows_at_1280_px(pages):
    bad = {n: {k: pages(n).layout[k][:3] for k in ('wrapped', 'overflow') if pages(n).layout[k]} for n in CHAPTERS}
    assert not {n: b for n, b in bad.items() if b}, bad
    assert sum(pages(n).layout['tables'] for n in CHAPTERS) > 20
