"""The runner survives faults, proved with real processes: a runner killed mid-cell and resumed, a Ctrl-C, a kernel
killed mid-cell, two runners on one results folder, and a corrupt record on disk. The runners get a private TMPDIR
(`private_env`): a runner killed outright leaves its kernel-socket folder there, not in /tmp. Runners started side by
side get one thread per cell (`--cpus-per-cell 1`), so that they do not oversubscribe the cores."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import psutil
import pytest
from conftest import copy_cells, run_cli

def grid(study, depths, epochs, data, out, seeds=(0,)):
    return ['run', '--study', study, '--datasets', 'breastmnist', '--sizes', '28', '--depths', *map(str, depths),
            '--seeds', *map(str, seeds), '--epochs', str(epochs), '--data-dir', str(data), '--out', str(out)]

def start(args, env=None):
    exe = Path(sys.executable).parent/'resdepth'
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})

def wait_for(cond, timeout=300, what='condition'):
    "Poll `cond` until it returns something true, and return that; fail after `timeout` seconds."
    t0 = time.time()
    while not (got := cond()):
        if time.time() - t0 > timeout: raise TimeoutError(f'{what} not met in {timeout} s')
        time.sleep(0.1)
    return got

def valid(path):
    r = json.loads(Path(path).read_text())
    return r['status'] == 'ok' and 'accuracy' in r['metrics']

def training(partial) -> bool:
    "Whether the cell notebook being written at `partial` is in its training cell (papermill saves it as each cell starts)."
    try: nb = json.loads(Path(partial).read_text())
    except (OSError, ValueError): return False  # not there yet, or being written
    return any('train_cell(' in ''.join(c['source']) and c['metadata'].get('papermill', {}).get('status') == 'running'
               for c in nb['cells'])

def kernels(runner: subprocess.Popen) -> list[psutil.Process]:
    "The kernel processes this runner started."
    try: kids = psutil.Process(runner.pid).children(recursive=True)
    except psutil.NoSuchProcess: return []
    return [k for k in kids if 'ipykernel_launcher' in ' '.join(k.cmdline())]

@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_runner_stopped_mid_cell_resumes_and_keeps_finished_cells(sig, tmp_path, shared_data, private_env):
    # ten epochs without early stopping: the second cell trains for several seconds (~0.6 s an epoch on one thread), long
    # after the runner is stopped (within a poll of 0.1 s of its training cell starting); its resumed run trains them all
    args = grid('kill', [1, 2], 10, shared_data, tmp_path) + ['--patience', '10', '--cpus-per-cell', '1']
    study, first, second = tmp_path/'kill', 'breastmnist-28-d1-s0', 'breastmnist-28-d2-s0'
    p = start(args, private_env)
    wait_for(lambda: (study/f'{first}.json').exists() and training(study/f'.{second}.partial.ipynb'), what='second cell training')
    its_kernels = kernels(p)
    assert its_kernels
    p.send_signal(sig); out, err = p.communicate(timeout=60)
    if sig == signal.SIGINT: assert p.returncode == 130 and 'interrupted' in err, err
    _, alive = psutil.wait_procs(its_kernels, timeout=30)
    assert not alive, alive  # its kernel does not outlive the runner (and cannot write the cell's record later)
    kept = (study/f'{first}.json').read_bytes()
    assert valid(study/f'{first}.json')
    assert not (study/f'{second}.json').exists() and not (study/f'{second}.ipynb').exists()  # stopped mid-cell: nothing promoted
    r = run_cli(*args, env=private_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (study/f'{first}.json').read_bytes() == kept
    assert valid(study/f'{second}.json') and (study/f'{second}.ipynb').exists()

@pytest.mark.parametrize('retries', [2, 0])
def test_a_kernel_killed_mid_cell_is_retried_or_recorded_and_the_grid_goes_on(retries, tmp_path, shared_data, private_env):
    args = grid('kdead', [1], 10, shared_data, tmp_path, seeds=(0, 1)) + ['--kernel-retries', str(retries), '--cpus-per-cell', '1']
    study, first, second = tmp_path/'kdead', 'breastmnist-28-d1-s0', 'breastmnist-28-d1-s1'
    p = start(args, private_env)
    wait_for(lambda: training(study/f'.{first}.partial.ipynb'), what='first cell training')
    [kernel] = kernels(p)
    kernel.kill()
    out, err = p.communicate(timeout=300)
    said = f'{first}: kernel failed' if retries else f'{first}: FAILED (kernel failure after 1 tries'
    assert said in out and p.returncode == (0 if retries else 1), out + err
    rec = json.loads((study/f'{first}.json').read_text())
    if retries: assert valid(study/f'{first}.json')  # run again in a fresh kernel
    else: assert rec['status'] == 'failed' and 'kernel failure' in rec['error'] and (study/f'{first}.ipynb').exists()
    assert valid(study/f'{second}.json') and f'[2/2] {second}: accuracy' in out  # the grid went on

def test_two_runners_share_a_folder_without_running_a_cell_twice(tmp_path, shared_data, private_env):
    args = grid('shared', [1, 2, 3, 4], 1, shared_data, tmp_path) + ['--cpus-per-cell', '1']  # two runners, one core each
    a, b = start(args, private_env), start(args, private_env)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    ran = [{line.split()[1].rstrip(':') for line in o.splitlines() if ': accuracy' in line} for o in outs]
    assert not ran[0] & ran[1], ran
    assert ran[0] | ran[1] == {f'breastmnist-28-d{d}-s0' for d in (1, 2, 3, 4)}
    assert all(valid(tmp_path/'shared'/f'breastmnist-28-d{d}-s0.json') for d in (1, 2, 3, 4))

def test_a_corrupt_record_is_reported_kept_aside_and_rerun(tmp_path, shared_data, private_env, e2e_grid):
    args = grid('corrupt', [1], 2, shared_data, tmp_path)
    copy_cells(e2e_grid[0]/'e2e', tmp_path/'corrupt', 'breastmnist-28-d1-s0')  # a finished record of this cell (2 epochs), not trained here
    rec = tmp_path/'corrupt'/'breastmnist-28-d1-s0.json'
    assert valid(rec)
    rec.write_text(rec.read_text()[:50])
    r = run_cli(*args, env=private_env)
    assert r.returncode == 0 and 'not a valid record' in r.stdout, r.stdout + r.stderr
    assert valid(rec)
    aside = list((tmp_path/'corrupt').glob('.breastmnist-28-d1-s0.json.corrupt-*'))
    assert len(aside) == 1 and len(aside[0].read_text()) == 50
