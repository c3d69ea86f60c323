"""`resdepth.search` on study folders: a search interrupted in round 2 resumes without running a cell twice, a failed
cell drops its configuration until it is rerun, `replay` on a finished grid agrees with the grid, search.json keeps
its shape. Simulated records (known means) stand in for training; test_own_data runs a real search that trains its
cells with `run_grid`, on an imported dataset."""
import json
from dataclasses import replace
from contextlib import redirect_stdout
from io import StringIO
import pytest
from resdepth.cli import main
from resdepth.core import ResdepthError
from resdepth.records import record_path, record_state
from resdepth.search import SEARCH_FILE, cell_prefix, replay, search, search_text, simulate_records
from resdepth.studies import study_cells

DATASETS, SIZES, DEPTHS, SEEDS = ['breastmnist', 'pneumoniamnist'], [28, 64], [1, 2, 3, 4], list(range(6))
BEST = {'breastmnist-64-d3', 'pneumoniamnist-28-d2'}  # planted: the best of each dataset, at 0.92

def grid():
    return study_cells('race', datasets=DATASETS, sizes=SIZES, depths=DEPTHS, seeds=SEEDS)

def means():
    m = {}
    for d in DATASETS:
        rest = iter([0.76, 0.80, 0.84, 0.86, 0.87, 0.88, 0.89])  # some close enough to the best to need several rounds
        for z in SIZES:
            for k in DEPTHS:
                p = f'{d}-{z}-d{k}'
                m[p] = 0.92 if p in BEST else next(rest)
    return m

class Runner:
    "A stand-in for `run_grid`: writes simulated records for the cells it is given, remembering each; optionally interrupted."
    def __init__(self, study_dir, means, stop_in_call=None):
        self.study_dir, self.means, self.stop_in_call, self.calls, self.written = study_dir, means, stop_in_call, 0, []
    def __call__(self, cells):
        self.calls += 1
        if self.calls == self.stop_in_call:  # half the round is written, then Ctrl-C
            half = cells[:len(cells) // 2]
            simulate_records(self.study_dir, self.means, cells=half); self.written += [c.cell_id for c in half]
            raise KeyboardInterrupt
        simulate_records(self.study_dir, self.means, cells=cells); self.written += [c.cell_id for c in cells]

def test_resume_after_interrupt(tmp_path):
    cells, m = grid(), means()
    run = Runner(tmp_path/'race', m, stop_in_call=2)
    with pytest.raises(KeyboardInterrupt): search(cells, tmp_path/'race', run, log=lambda *_: None)
    saved = json.loads((tmp_path/'race'/SEARCH_FILE).read_text())
    assert not saved['finished'] and [r['stopped'] for r in saved['races']] == ['running', 'running']
    assert [len(r['rounds']) for r in saved['races']] == [1, 1]  # round 1 was written before round 2 started
    n_before = len(run.written)
    lines = []
    run.stop_in_call = None  # the same runner, no longer interrupted
    out = search(cells, tmp_path/'race', run, log=lines.append)
    assert len(run.written) == len(set(run.written)), "a cell was run twice"
    assert run.written[n_before:] and not set(run.written[n_before:]) & set(run.written[:n_before])
    assert lines[0].endswith('1 round already raced on the records (%d cells)' % n_before)
    fresh = search(cells, tmp_path/'fresh', Runner(tmp_path/'fresh', m), log=lambda *_: None)  # never interrupted
    assert out['races'] == fresh['races'] and out['cells_run'] == fresh['cells_run'] == len(run.written)
    assert {r['answer']['best'] for r in out['races']} == BEST
    assert out['finished'] and out['cells_run'] < out['full_grid_cells'] == 96
    idle = Runner(tmp_path/'race', m)
    again = search(cells, tmp_path/'race', idle, log=lambda *_: None)  # a finished search runs nothing
    assert idle.calls == 0 and again['races'] == out['races']

def test_search_json_shape(tmp_path):
    out = search(grid(), tmp_path/'race', Runner(tmp_path/'race', means()), first_seeds=2, max_seeds=5, budget=60, log=lambda *_: None)
    s = json.loads((tmp_path/'race'/SEARCH_FILE).read_text())
    assert s == out
    assert list(s) == ['study', 'race_on', 'metric', 'alpha', 'first_seeds', 'max_seeds', 'budget', 'seeds', 'cells_run',
                       'full_grid_cells', 'finished', 'updated', 'races']
    assert (s['study'], s['race_on'], s['metric'], s['alpha'], s['first_seeds'], s['max_seeds'], s['budget'], s['seeds']) == \
           ('race', 'valid', 'accuracy', 0.05, 2, 5, 60, [0, 1, 2, 3, 4])
    assert s['cells_run'] <= 60 and s['full_grid_cells'] == 96 and s['finished'] is True
    assert not list((tmp_path/'race').glob(f'.{SEARCH_FILE}*')), "a temporary file was left behind"
    for race in s['races']:
        assert list(race) == ['dataset', 'stopped', 'configs', 'rounds', 'answer']
        assert race['stopped'] in ('one survivor', 'max seeds', 'budget', 'running')
        for c in race['configs']:
            assert list(c) == ['cell_prefix', 'size', 'depth', 'arch', 'seeds_run', 'mean', 'ci_low', 'ci_high', 'n', 'status',
                               'dropped_round', 'reason', 'flops', 'seconds']
            assert c['status'] in ('best', 'not worse', 'dropped') and c['n'] == len(c['seeds_run']) >= 2
            assert c['ci_low'] < c['mean'] < c['ci_high'] and c['flops'] > 0 and c['seconds'] > 0
            assert (c['status'] == 'dropped') == (c['dropped_round'] is not None) == (c['reason'] is not None)
        for r in race['rounds']:
            assert list(r) == ['round', 'seeds', 'survivors', 'best', 'tests', 'cells']
            assert len(r['cells']) == r['survivors'] * len(r['seeds'])
            for t in r['tests']:
                assert list(t) == ['config', 'mean_diff', 'p', 'p_holm', 'n', 'dropped']
                assert 0 <= t['p'] <= t['p_holm'] <= 1 and t['mean_diff'] <= 0
        a = race['answer']
        assert list(a) == ['best', 'not_worse', 'cheapest_flops', 'cheapest_seconds']
        final = [a['best'], *a['not_worse']]
        assert a['cheapest_flops'] in final and a['cheapest_seconds'] in final
        by = {c['cell_prefix']: c for c in race['configs']}
        assert by[a['cheapest_flops']]['flops'] == min(by[p]['flops'] for p in final)

def test_failed_cell_drops_until_rerun(tmp_path):
    cells, m = grid(), means()
    failing = {**m, 'breastmnist-64-d3': 'failed'}  # the planted best fails in round 1
    out = search(cells, tmp_path/'race', Runner(tmp_path/'race', failing), log=lambda *_: None)
    bm = next(r for r in out['races'] if r['dataset'] == 'breastmnist')
    c = next(c for c in bm['configs'] if c['cell_prefix'] == 'breastmnist-64-d3')
    assert (c['status'], c['dropped_round'], c['reason']) == ('dropped', 1, 'cell failed: RuntimeError: simulated failure')
    assert bm['answer']['best'] != 'breastmnist-64-d3'
    # `resdepth run --retry-failed` reruns the failed cells; here they succeed
    retried = [x for x in cells if record_state(record_path(tmp_path/'race', x))[0] == 'failed']
    assert {cell_prefix(x) for x in retried} == {'breastmnist-64-d3'}
    simulate_records(tmp_path/'race', m, cells=retried)
    out = search(cells, tmp_path/'race', Runner(tmp_path/'race', m), log=lambda *_: None)
    assert {r['answer']['best'] for r in out['races']} == BEST  # back in the race, and it wins

def test_refusals(tmp_path):
    cells = grid()
    simulate_records(tmp_path/'race', means(), cells=[replace(cells[0], epochs=2)])
    with pytest.raises(ResdepthError, match='was made with epochs=2 but this run asks for epochs=50'):  # the record's protocol is not the search's
        search(cells, tmp_path/'race', Runner(tmp_path/'race', means()), log=lambda *_: None)
    with pytest.raises(ResdepthError, match='round 1 needs 48 cells'):
        search(cells, tmp_path/'b', Runner(tmp_path/'b', means()), budget=40, log=lambda *_: None)
    with pytest.raises(ResdepthError, match='48 cells of round 1 have no record after running'):
        search(cells, tmp_path/'c', lambda cs: None, log=lambda *_: None)
    assert not (tmp_path/'b'/SEARCH_FILE).exists()

def test_replay_agrees_with_full_grid(tmp_path):
    m = {**means(), 'pneumoniamnist-64-d4': 'not_buildable'}
    simulate_records(tmp_path/'grid', m, seeds=SEEDS)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path/'grid').iterdir()}
    r = replay(tmp_path/'grid')
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path/'grid').iterdir()} == before  # nothing written
    assert [g['best'] for g in r['full_grid']] == ['breastmnist-64-d3', 'pneumoniamnist-28-d2']
    assert all(all(a.values()) for a in r['agrees'])
    assert r['cells_run'] < r['full_grid_cells'] == 96
    pn = next(x for x in r['races'] if x['dataset'] == 'pneumoniamnist')
    nb = next(c for c in pn['configs'] if c['cell_prefix'] == 'pneumoniamnist-64-d4')
    assert (nb['dropped_round'], nb['reason'].startswith('not buildable')) == (1, True)
    txt = search_text(r)
    assert 'same best: yes' in txt and 'NO' not in txt and 'rounds the race would have run: 1: seeds 0-2 x 8 (24 cells)' in txt
    assert f"cells run: {r['cells_run']} of the full grid's 96" in txt
    out = StringIO()  # the command line prints the same
    with redirect_stdout(out): code = main(['search', 'grid', '--replay', '--out', str(tmp_path), '--race-on', 'test', '--max-seeds', '6'])
    assert code == 0 and 'raced on test accuracy' in out.getvalue() and 'same best: yes' in out.getvalue()
