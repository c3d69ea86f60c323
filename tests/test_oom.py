"""A cell that runs out of memory is a failed cell with a one-line reason, the grid goes on, and `--retry-failed` reruns
it. The out-of-memory is real and safe: the runner is started under a data limit (RLIMIT_DATA, `ulimit -d`), which the
kernel it starts inherits, so an allocation past the limit fails inside that process and never reaches the machine's
memory."""
import json, os, re, resource, subprocess, sys
from pathlib import Path

GIB = 2**30
UNITS = dict(bytes=1, KiB=2**10, MiB=2**20, GiB=GIB)
SIZE = r'([\d.]+) (bytes|KiB|MiB|GiB)'

def size(figure, unit): return float(figure) * UNITS[unit]

def run_limited(args, limit, env):
    "Run the `resdepth` command with every process it starts held to `limit` bytes of data (heap and private mappings)."
    exe = Path(sys.executable).parent/'resdepth'
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env={**os.environ, **env}, timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)))

def record(study, cell): return json.loads((study/f'{cell}.json').read_text())

def test_a_cell_out_of_memory_fails_alone_and_retry_failed_reruns_it(tmp_path, shared_data, private_env):
    # BreastMNIST resized from 28 px: at 128 px one batch of all 468 training images holds about 2.4 GB of activations,
    # more than 2.5 GiB less the 1.2 GB the kernel holds; at 32 px the same batch needs about 0.15 GB. Both read the 28 px file.
    args = ['run', '--study', 'oom', '--datasets', 'breastmnist', '--sizes', '128', '32', '--resize-from', '28', '--depths', '1',
            '--seeds', '0', '--epochs', '1', '--bs', '2048', '--cpus-per-cell', '2', '--data-dir', shared_data, '--out', tmp_path,
            '--no-fit-check']
    study, big, small = tmp_path/'oom', 'breastmnist-128-d1-s0', 'breastmnist-32-d1-s0'
    r = run_limited(args, int(2.5 * GIB), private_env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f'[1/2] {big}: FAILED (CellOutOfMemory: {big} ran out of host memory while training' in r.stdout, r.stdout
    assert f'[2/2] {small}: accuracy' in r.stdout, r.stdout  # the grid went on, in a fresh kernel
    failed = record(study, big)
    assert failed['status'] == 'failed' and '\n' not in failed['error'] and (study/f'{big}.ipynb').exists(), failed
    m = re.match(rf"CellOutOfMemory: {big} ran out of host memory while training: an allocation of {SIZE} failed with {SIZE} free "
                 rf"under this process's data limit of 2.50 GiB \(the host had {SIZE} available\); its data takes {SIZE} on the "
                 rf"device\. Run fewer cells side by side .* --retry-failed`", failed['error'])
    assert m and size(m[1], m[2]) > size(m[3], m[4]), failed['error']  # it asked for more than was left under the limit
    assert abs(size(m[7], m[8]) - 780 * (28 * 28 + 8)) < 10, m[0]  # on the device: BreastMNIST's 780 images as uint8, labels as int64
    kept = (study/f'{small}.json').read_bytes()
    assert record(study, small)['status'] == 'ok'

    r = run_limited(args + ['--retry-failed'], int(4.5 * GIB), private_env)  # the same protocol on a larger "device"
    assert r.returncode == 0, r.stdout + r.stderr
    assert '1 of 2 cells to run (1 done, 1 failed)' in r.stdout and f'[1/1] {big}: accuracy' in r.stdout, r.stdout
    assert record(study, big)['status'] == 'ok' and (study/f'{small}.json').read_bytes() == kept

