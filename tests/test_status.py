"`resdepth status` counts every state a cell can be in and gives an ETA from the records' own seconds."
import json
from conftest import run_cli
from resdepth.core import write_json
from resdepth.records import lock_path, record_path
from resdepth.studies import study_cells
from resdepth.locks import claim

AXES = ['--datasets', 'breastmnist', 'retinamnist', '--sizes', '28', '--depths', '1', '2', '3', '4', '--seeds', '0']

def test_status_shows_each_state_per_dataset_and_an_eta_from_the_records(tmp_path):
    study = tmp_path/'st'
    cells = {(c.dataset, c.depth): c for c in study_cells('st', ['breastmnist', 'retinamnist'], [28], [1, 2, 3, 4], [0])}
    done = {('breastmnist', 1): 10.0, ('breastmnist', 2): 20.0, ('retinamnist', 1): 60.0}  # mean 30 s, median 20 s
    for k, s in done.items():
        write_json(record_path(study, cells[k]), dict(cell_id=cells[k].cell_id, status='ok', config={}, metrics=dict(accuracy=0.8),
                                                      seconds=dict(total=s)))
    c = cells['breastmnist', 3]
    write_json(record_path(study, c), dict(cell_id=c.cell_id, status='failed', error='ValueError: x', notebook='x.ipynb', config={}))
    record_path(study, cells['breastmnist', 4]).write_text('{"cell_id": "breastmn')  # cut short
    running = [cells['retinamnist', 2], cells['retinamnist', 3]]  # their locks held here, as a runner holds them
    with claim(lock_path(study, running[0])) as a, claim(lock_path(study, running[1])) as b:
        assert a and b
        r = run_cli('status', 'st', *AXES, '--out', tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['dataset', 'cells', 'done', 'failed', 'running', 'corrupt', 'pending'], r.stdout  # one header line
    rows = {l.split()[0]: l.split()[1:] for l in lines[1:4]}
    assert rows['breastmnist'] == ['4', '2', '1', '0', '1', '0'], r.stdout
    assert rows['retinamnist'] == ['4', '1', '0', '2', '0', '1'], r.stdout
    assert rows['total'] == ['8', '3', '1', '2', '1', '1'], r.stdout
    assert '3 of 8 cells done (38%), 1 failed;' in r.stdout, r.stdout
    # 4 cells left (2 running, 1 corrupt, 1 pending; the failed one waits for --retry-failed), 30 s each on average,
    # 2 at a time: 30 * 4 / 2 = 60 s
    assert 'mean cell 30.0 s; about 0:01:00 left' in r.stdout, r.stdout
    assert json.loads(record_path(study, cells['breastmnist', 1]).read_text())['seconds']['total'] == 10.0  # status writes nothing
    assert record_path(study, cells['breastmnist', 4]).read_text() == '{"cell_id": "breastmn'

def test_status_says_the_eta_is_unknown_until_a_cell_finishes(tmp_path):
    r = run_cli('status', 'fresh', *AXES, '--out', tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].split() == ['dataset', 'cells', 'done', 'failed', 'running', 'corrupt', 'pending'], r.stdout  # no pandas 'col_0'
    assert r.stdout.splitlines()[3].split() == ['total', '8', '0', '0', '0', '0', '8'], r.stdout
    assert 'no cell finished yet; ETA unknown until a cell finishes' in r.stdout, r.stdout
    assert not (tmp_path/'fresh').exists()  # status writes nothing
