"""The search chapter (`book/search.ipynb`) executed as the book executes it, in a fresh kernel, against hand-made results
folders: one that holds a finished search of an imported dataset (`xrays`, unknown to MedMNIST), a search still running
and a `search.json` cut short; and one with no search at all. The chapter must execute, answer first, draw and save each
race, and say in one line what it cannot show."""
import json
import nbformat
from nbclient import NotebookClient
from conftest import ROOT

def config(prefix, size, depth, seeds, mean, status, dropped=None, reason=None, flops=None, seconds=None):
    return dict(cell_prefix=prefix, size=size, depth=depth, arch='resnet18', seeds_run=seeds, mean=mean, n=len(seeds),
                ci_low=mean - .01, ci_high=mean + .01, status=status, dropped_round=dropped, reason=reason, flops=flops, seconds=seconds)

def search(study, finished=True):
    "A search of `xrays` over three configurations and five seeds: block 1 @ 28 px dropped in round 1, the others to the end."
    last = 5 if finished else 4
    configs = [config('xrays-28-d1', 28, 1, [0, 1, 2], .71, 'dropped', 1, 'mean 0.710 vs 0.842, Holm p 0.004', .8e6, 5.),
               config('xrays-64-d3', 64, 3, list(range(last)), .842, 'best', flops=12.5e6, seconds=9.),
               config('xrays-28-d3', 28, 3, list(range(last)), .835, 'not worse', flops=2.4e6, seconds=6.)]
    rounds = [dict(round=1, seeds=[0, 1, 2], survivors=2, best='xrays-64-d3', cells=[f'{c["cell_prefix"]}-s{s}' for c in configs for s in (0, 1, 2)],
                   tests=[dict(config='xrays-28-d1', mean_diff=-.132, p=.001, p_holm=.002, n=3, dropped=True),
                          dict(config='xrays-28-d3', mean_diff=-.004, p=.5, p_holm=.5, n=3, dropped=False)])]
    rounds += [dict(round=r, seeds=[r + 1], survivors=2, best='xrays-64-d3', cells=[f'xrays-64-d3-s{r + 1}', f'xrays-28-d3-s{r + 1}'],
                    tests=[dict(config='xrays-28-d3', mean_diff=-.007, p=.4, p_holm=.4, n=r + 2, dropped=False)]) for r in range(2, last - 1)]
    race = dict(dataset='xrays', stopped='max seeds' if finished else 'running', configs=configs, rounds=rounds,
                answer=dict(best='xrays-64-d3', not_worse=['xrays-28-d3'], cheapest_flops='xrays-28-d3', cheapest_seconds='xrays-28-d3'))
    return dict(study=study, race_on='valid', metric='accuracy', alpha=0.05, first_seeds=3, max_seeds=5, budget=None, seeds=[0, 1, 2, 3, 4],
                cells_run=sum(len(r['cells']) for r in rounds), full_grid_cells=15, finished=finished, updated='2026-11-23T20:00:00+00:00',
                races=[race])

def execute(runs, monkeypatch) -> list[tuple[str, str]]:
    "Execute the chapter with `runs` as the results root; its outputs in order as (kind, text): kind is a MIME type or 'stream'."
    monkeypatch.setenv('RESDEPTH_RUNS', str(runs)); monkeypatch.delenv('RESDEPTH_STUDY', raising=False)
    nb = nbformat.read(ROOT/'book'/'search.ipynb', as_version=4)
    NotebookClient(nb, timeout=300, kernel_name='python3', resources={'metadata': {'path': str(ROOT/'book')}}).execute()
    out = []
    for c in nb.cells:
        for o in c.get('outputs', []):
            if o.output_type == 'stream': out.append(('stream', o.text))
            for kind in ('image/png', 'text/markdown', 'text/html'):
                if kind in o.get('data', {}): out.append((kind, o.data[kind])); break
    return out

def test_search_chapter(tmp_path, monkeypatch):
    runs = tmp_path/'runs'
    for name, finished in (('xrays', True), ('live', False)):
        (runs/name).mkdir(parents=True); (runs/name/'search.json').write_text(json.dumps(search(name, finished)))
    (runs/'broken').mkdir(); (runs/'broken'/'search.json').write_text('{"study": "broken", "races": [')
    (runs/'plain').mkdir()  # a study that was run but never searched
    out = execute(runs, monkeypatch)
    text = '\n'.join(t for k, t in out if k != 'image/png')
    assert not [t for k, t in out if k == 'stream'], out  # no warnings or prints on the page
    assert 'Search of <code>broken</code> not shown' in text and 'rerun `resdepth search broken`' in text
    assert 'No study has been searched' not in text
    answers = [i for i, (k, t) in enumerate(out) if k == 'text/markdown' and t.startswith('**xrays.**')]
    images = [i for i, (k, _) in enumerate(out) if k == 'image/png']
    assert len(answers) == 2 and len(images) == 2 and max(answers) < min(images)  # every answer before the first race
    finished = out[answers[1]][1]
    assert 'The best configuration is **block 3 @ 64 px**: mean validation accuracy 0.842 [0.832, 0.852] (95% CI) over 5 seeds (0-4).' in finished
    assert 'Not significantly worse than it: block 3 @ 28 px, 0.835 [0.825, 0.845] over 5 seeds.' in finished
    assert 'is block 3 @ 28 px (2.4 MFLOPs per image, against 12.5 for the best)' in finished
    assert "The race stopped after 3 complete rounds and 13 cells of this dataset's 15 (13% fewer)" in finished
    assert "ran 13 cells of the full grid's 15, 13% fewer" in text and 'the test set played no part in choosing' in text
    assert out[answers[0]][1].startswith('**xrays.** So far the best') and '**This search has not finished**' in text
    assert '<td>round 1: -0.132 vs best' not in text and '<td>mean 0.710 vs 0.842, Holm p 0.004</td>' in text  # the table keeps the reason
    assert '<td>block 1 @ 28 px (-0.132, Holm p 0.002)</td>' in text  # the round table names what round 1 dropped
    for name in ('xrays', 'live'):
        for ext in ('png', 'pdf'): assert (runs/name/'figures'/f'race-xrays.{ext}').stat().st_size > 1000

def test_search_chapter_without_search(tmp_path, monkeypatch):
    (tmp_path/'runs'/'quick').mkdir(parents=True)
    out = execute(tmp_path/'runs', monkeypatch)
    said = [t for k, t in out if k == 'text/markdown']
    assert len(said) == 1 and said[0].startswith('No study has been searched yet.') and '`resdepth search STUDY`' in said[0], out
    assert not [k for k, _ in out if k == 'image/png']
