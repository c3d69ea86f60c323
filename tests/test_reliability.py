"""The runner survives faults, proved with real processes: a runner killed mid-cell and resumed, a Ctrl-C, two
runners on one results folder, and a corrupt record on disk."""
import json, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import run_cli

def grid(study, depths, epochs, data, out):
    return ['run', '--study', study, '--datasets', 'breastmnist', '--sizes', '28', '--depths', *map(str, depths),
            '--seeds', '0', '--epochs', str(epochs), '--data-dir', str(data), '--out', str(out)]

def start(args):
    exe = Path(sys.executable).parent/'resdepth'
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def wait_for(cond, timeout=300):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise TimeoutError('condition not met')
        time.sleep(0.1)

def valid(path):
    r = json.loads(Path(path).read_text())
    return r['status'] == 'ok' and 'accuracy' in r['metrics']

@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_runner_stopped_mid_cell_resumes_and_keeps_finished_cells(sig, tmp_path, shared_data):
    args = grid('kill', [1, 2], 30, shared_data, tmp_path) + ['--patience', '30']  # the second cell trains for several seconds
    study, first, second = tmp_path/'kill', 'breastmnist-28-d1-s0', 'breastmnist-28-d2-s0'
    p = start(args)
    wait_for(lambda: (study/f'{first}.json').exists() and (study/f'.{second}.partial.ipynb').exists())
    time.sleep(1)  # the second cell is training in the worker's warm kernel
    p.send_signal(sig); out, err = p.communicate(timeout=60)
    if sig == signal.SIGINT: assert p.returncode == 130 and 'interrupted' in err, err
    kept = (study/f'{first}.json').read_bytes()
    assert valid(study/f'{first}.json')
    assert not (study/f'{second}.json').exists() and not (study/f'{second}.ipynb').exists()  # stopped mid-cell: nothing promoted
    r = run_cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (study/f'{first}.json').read_bytes() == kept
    assert valid(study/f'{second}.json') and (study/f'{second}.ipynb').exists()

def test_two_runners_share_a_folder_without_running_a_cell_twice(tmp_path, shared_data):
    args = grid('shared', [1, 2, 3, 4], 1, shared_data, tmp_path)
    a, b = start(args), start(args)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    ran = [{line.split()[1].rstrip(':') for line in o.splitlines() if ': accuracy' in line} for o in outs]
    assert not ran[0] & ran[1], ran
    assert ran[0] | ran[1] == {f'breastmnist-28-d{d}-s0' for d in (1, 2, 3, 4)}
    assert all(valid(tmp_path/'shared'/f'breastmnist-28-d{d}-s0.json') for d in (1, 2, 3, 4))

def test_a_corrupt_record_is_reported_kept_aside_and_rerun(tmp_path, shared_data):
    args = grid('corrupt', [1], 1, shared_data, tmp_path)
    assert run_cli(*args).returncode == 0
    rec = tmp_path/'corrupt'/'breastmnist-28-d1-s0.json'
    rec.write_text(rec.read_text()[:50])
    r = run_cli(*args)
    assert r.returncode == 0 and 'not a valid record' in r.stdout, r.stdout + r.stderr
    assert valid(rec)
    aside = list((tmp_path/'corrupt').glob('.breastmnist-28-d1-s0.json.corrupt-*'))
    assert len(aside) == 1 and len(aside[0].read_text()) == 50

def test_status_counts_cells_by_state(tmp_path, shared_data):
    assert run_cli(*grid('st', [1], 1, shared_data, tmp_path)).returncode == 0  # depth 1 only
    r = run_cli('status', 'st', '--datasets', 'breastmnist', '--sizes', '28', '--depths', '1', '2', '--seeds', '0', '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    row = next(l for l in r.stdout.splitlines() if l.startswith('breastmnist')).split()
    assert row[1:] == ['1', '0', '0', '0', '1'], r.stdout  # done failed running corrupt pending
    assert 'mean cell' in r.stdout
