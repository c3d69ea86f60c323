"""Scaling out keeps the runner's guarantees: local workers run cells side by side, shards split a grid between
runners, and the Ray backend survives a dead worker and a Ctrl-C, on its own local instance or on a Ray cluster
started separately. Real processes, real Ray instances, real BreastMNIST files. Every process a Ray test starts
carries the test's private TMPDIR (`private_env`), so the test finds, kills and waits for its own processes only."""
import json, os, signal, socket, subprocess, sys
from datetime import datetime
from pathlib import Path
import nbformat
import psutil
import torch
from resdepth.models import truncated_resnet
from conftest import run_cli, run_clis, tagged
from test_reliability import grid, kernels, start, training, valid, wait_for

CELLS = [f'breastmnist-28-d{d}-s0' for d in (1, 2, 3, 4)]

def span(nb: Path) -> tuple:
    "Start and end of a cell's execution, from papermill's metadata in its executed notebook."
    m = nbformat.read(nb, as_version=4).metadata.papermill
    return datetime.fromisoformat(m.start_time), datetime.fromisoformat(m.end_time)

def ran_in(nb: Path) -> Path:
    "The scratch folder of the Ray worker that executed a cell's notebook (papermill records where it wrote it)."
    return Path(nbformat.read(nb, as_version=4).metadata.papermill.output_path).parent.parent

def visible(folder: Path, pattern: str) -> list[Path]:
    "Files under their final names (the hidden partial notebooks excluded)."
    return [f for f in folder.glob(pattern) if not f.name.startswith('.')]

def ran(out: str) -> set:
    "The cells a run's output says it finished."
    return {line.split()[1].rstrip(':') for line in out.splitlines() if ': accuracy' in line}

def cell_tasks(root_pid: int) -> dict[int, psutil.Process]:
    "Ray workers below process `root_pid` that are running a cell task."
    try: kids = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess: return {}
    out = {}
    for k in kids:
        try:
            if 'ray::cell_task' in ' '.join(k.cmdline()): out[k.pid] = k
        except psutil.Error: pass
    return out

def worker_training(tmpdir: Path, root_pid: int):
    """(worker, cell) for a Ray worker below `root_pid` whose cell is in its training cell: a worker runs a cell in its
    scratch folder TMPDIR/resdepth-ray-<pid>/, where the cell's partial notebook shows which cell of it is running."""
    workers = cell_tasks(root_pid)
    for nb in tmpdir.glob('resdepth-ray-*/*/.*.partial.ipynb'):
        pid = int(nb.parent.parent.name.rsplit('-', 1)[1])
        if pid in workers and training(nb): return workers[pid], nb.name[1:-len('.partial.ipynb')]

def test_two_local_workers_run_cells_side_by_side_sharing_the_cores(tmp_path, shared_data, private_env):
    r = run_cli(*grid('workers', [1, 2, 3, 4], 2, shared_data, tmp_path), '--workers', '2', env=private_env)
    assert r.returncode == 0, r.stdout + r.stderr
    study = tmp_path/'workers'
    recs = [json.loads((study/f'{c}.json').read_text()) for c in CELLS]
    assert all(valid(study/f'{c}.json') for c in CELLS)
    share = max(1, (os.cpu_count() or 1) // 2)  # the machine's cores shared out between the two workers
    assert {x['config']['threads'] for x in recs} == {share} and {x['environment']['threads'] for x in recs} == {share}
    spans = sorted(span(study/f'{c}.ipynb') for c in CELLS)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans  # two cells overlapped in time
    again = run_cli(*grid('workers', [1, 2, 3, 4], 2, shared_data, tmp_path), '--workers', '2', env=private_env)
    assert again.returncode == 0 and 'nothing to run' in again.stdout

def test_ctrl_c_stops_local_workers_without_a_record_for_cells_in_flight(tmp_path, shared_data, private_env):
    args = grid('wstop', [3, 4], 20, shared_data, tmp_path) + ['--workers', '2']
    study = tmp_path/'wstop'
    p = start(args, private_env)
    wait_for(lambda: all(training(study/f'.{c}.partial.ipynb') for c in CELLS[2:]), what='both cells training')
    its_kernels = kernels(p)
    assert len(its_kernels) == 2, its_kernels
    p.send_signal(signal.SIGINT); out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and 'interrupted' in err, out + err
    assert not visible(study, '*.json') and not visible(study, '*.ipynb'), list(study.iterdir())
    _, alive = psutil.wait_procs(its_kernels, timeout=30)
    assert not alive, alive

def test_two_shards_together_run_every_cell_once(tmp_path, shared_data, private_env):
    args, study, union = grid('shards', [1, 2, 3, 4], 1, shared_data, tmp_path) + ['--cpus-per-cell', '1'], tmp_path/'shards', set()
    for i, mine in ((0, CELLS[0::2]), (1, CELLS[1::2])):  # shard i of n: every n-th cell from the i-th
        r = run_cli(*args, '--shard', f'{i}/2', env=private_env)
        assert r.returncode == 0 and '2 of 2 cells to run' in r.stdout, r.stdout + r.stderr
        assert ran(r.stdout) == set(mine), r.stdout  # only its own cells
        union |= set(mine)
        assert {f.stem for f in visible(study, '*.json')} == union  # and nothing of the other shard
    assert union == set(CELLS) and all(valid(study/f'{c}.json') for c in CELLS)
    again = run_cli(*args, env=private_env)
    assert again.returncode == 0 and 'nothing to run' in again.stdout, again.stdout + again.stderr

def test_ray_backend_retries_a_dead_worker_resumes_and_stops_cleanly(tmp_path, shared_data, private_env):
    import ray  # part of the dev install: a missing Ray must fail here, not skip
    env, private_tmp = private_env, Path(private_env['TMPDIR'])
    args = grid('ray', [1, 2, 3, 4], 3, shared_data, tmp_path) + ['--backend', 'ray', '--cpus-per-cell', '1', '--save-model']
    study = tmp_path/'ray'
    p = start(args, env)
    victim, killed = wait_for(lambda: worker_training(private_tmp, p.pid), timeout=180, what='a Ray worker training a cell')
    victim.kill()
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, out + err
    for c in CELLS:  # every record came back to the driver
        assert valid(study/f'{c}.json') and (study/f'{c}.ipynb').exists() and (study/f'{c}.pt').stat().st_size > 10_000, c
        assert json.loads((study/f'{c}.json').read_text())['worker']
    again_in = ran_in(study/f'{killed}.ipynb')  # the killed worker's cell was run again, by another worker
    assert again_in.parent == private_tmp and again_in.name.startswith('resdepth-ray-') and again_in.name != f'resdepth-ray-{victim.pid}'
    weights = torch.load(study/f'{CELLS[0]}.pt', map_location='cpu')  # the weights shipped back load into the network they came from
    truncated_resnet(1, 2, in_chans=1).load_state_dict(weights)
    wait_for(lambda: not tagged(private_tmp), timeout=60, what="the run's Ray instance, workers and kernels to exit")
    again = run_cli(*args, env=env)
    assert again.returncode == 0 and 'nothing to run' in again.stdout, again.stdout + again.stderr

    # Ctrl-C: tasks in flight are cancelled, nothing half-written, the local Ray instance is shut down
    args = grid('raystop', [3, 4], 30, shared_data, tmp_path) + ['--backend', 'ray']
    p = start(args, env)
    wait_for(lambda: worker_training(private_tmp, p.pid), timeout=180, what='a Ray worker training a cell')
    p.send_signal(signal.SIGINT); out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and 'interrupted' in err, out + err
    assert not visible(tmp_path/'raystop', '*.json') and not visible(tmp_path/'raystop', '*.ipynb')
    wait_for(lambda: not tagged(private_tmp), timeout=60, what="the run's Ray instance, workers and kernels to exit")

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_ray_backend_runs_on_a_cluster_started_separately(tmp_path, shared_data, private_env):
    private_tmp, port, log = Path(private_env['TMPDIR']), free_port(), tmp_path/'ray-start.log'
    # the cluster's processes get a TMPDIR of their own below the driver's: its Ray session and its workers' scratch folders
    # are kept apart from any the driver could make, and the driver cannot find the cluster by looking in its own TMPDIR
    cluster_tmp = private_tmp/'head'; cluster_tmp.mkdir()
    ray_cli = Path(sys.executable).parent/'ray'
    with open(log, 'w') as fh:  # --block: the cluster's processes are children of this one, which stops them when terminated
        head = subprocess.Popen([str(ray_cli), 'start', '--head', f'--port={port}', '--num-cpus=2', '--num-gpus=0',
                                 '--node-ip-address=127.0.0.1', '--include-dashboard=false', '--disable-usage-stats',
                                 f'--dashboard-port={free_port()}', f'--dashboard-agent-listen-port={free_port()}',
                                 f'--temp-dir={cluster_tmp/"ray"}', '--block'], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **private_env, 'TMPDIR': str(cluster_tmp)})
    try:
        wait_for(lambda: head.poll() is not None or 'Ray runtime started' in log.read_text(), timeout=120, what='the Ray head to start')
        assert head.poll() is None, log.read_text()
        r = run_cli(*grid('cluster', [1, 2], 1, shared_data, tmp_path), '--backend', 'ray', '--address', f'127.0.0.1:{port}', env=private_env)
        assert r.returncode == 0 and 'Ray: 2 CPUs, 0 GPUs' in r.stdout, r.stdout + r.stderr
        assert ran(r.stdout) == set(CELLS[:2]) and all(valid(tmp_path/'cluster'/f'{c}.json') for c in CELLS[:2])
        for c in CELLS[:2]:  # run by the cluster's workers, not by a Ray instance the driver started itself
            assert ran_in(tmp_path/'cluster'/f'{c}.ipynb').parent == cluster_tmp, c
        assert head.poll() is None and any(p.name() == 'raylet' for p in psutil.Process(head.pid).children(recursive=True))  # still up
    finally:
        procs = psutil.Process(head.pid).children(recursive=True) if head.poll() is None else []
        head.terminate()
        try: head.wait(timeout=60)
        except subprocess.TimeoutExpired: head.kill(); head.wait()
        _, alive = psutil.wait_procs(procs, timeout=30)
        for q in alive: q.kill()
    assert not alive, alive  # `ray start --block` stopped its cluster when terminated

def test_scale_out_options_are_checked(tmp_path, shared_data, private_env):
    base = grid('bad', [1], 1, shared_data, tmp_path)
    cases = ((['--workers', '0'], '--workers must be at least 1'),
             (['--backend', 'ray', '--workers', '2'], '--workers is for the local backend'),
             (['--gpus-per-cell', '0.5'], 'need --backend ray'),
             (['--cpus-per-cell', '1.5'], 'whole number of threads'),
             (['--backend', 'ray', '--gpus-per-cell', '1000'], 'lower --cpus-per-cell or --gpus-per-cell'))  # more GPUs than any machine has
    runs = run_clis(*([*base, *extra] for extra, _ in cases), env=private_env)  # each its own runner, three at a time
    for (extra, msg), r in zip(cases, runs):
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
    assert not (tmp_path/'bad').exists() or not list((tmp_path/'bad').glob('*.json'))
