"""`resdepth bench --quick` end to end on a plan small enough for CI: every part runs (matrix product, the three
training loops, runner overhead in a warm and a fresh kernel, one and two workers), the printed table names the
targets, and the JSON file holds every figure the book's performance appendix reads."""
import json, os, subprocess, sys
from resdepth.bench import PLANS, TARGETS

# the --quick plan cut to one of everything: one depth, one epoch, one repeat, one fresh kernel, two cells per worker run
TINY = dict(matmul=(256,), throughput=[dict(sizes=(28,), depths=(1,), epochs=1, repeats=1)],
            overhead=dict(depths=(1, 2), epochs=1, n_fresh=1), workers=dict(depths=(1,), seeds=(0, 1), epochs=1))

def test_bench_runs_every_part_prints_the_targets_and_writes_its_figures(tmp_path, shared_data, private_env):
    assert set(TINY) == set(PLANS['quick'])
    out = tmp_path/'bench.json'
    code = (f"import sys, resdepth.bench as b; b.PLANS['quick'] = {TINY!r}\n"
            f"from resdepth.cli import main; sys.exit(main(['bench', '--quick', '--data-dir', {str(shared_data)!r}, '--json', {str(out)!r}]))")
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, **private_env})
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert set(res) == {'quick', 'machine', 'targets', 'matmul_gflops', 'throughput', 'overhead', 'workers', 'met'}
    assert res['quick'] is True and res['targets'] == TARGETS and set(res['met']) == set(TARGETS)
    assert res['matmul_gflops'] > 0 and res['machine']['cores'] == os.cpu_count()
    [row] = res['throughput']
    assert (row['size'], row['depth']) == (28, 1) and all(row[k] > 0 for k in ('resdepth', 'medmnist', 'plain', 'gflops', 'share_of_matmul'))
    assert [len(res['overhead'][k]['cells']) for k in ('warm', 'first', 'fresh')] == [1, 1, 1]
    assert all(0 < res['overhead'][k]['inside'] < res['overhead'][k]['wall'] for k in ('warm', 'first', 'fresh'))
    assert [res['workers'][k]['cells'] for k in ('1 worker', '2 workers')] == [2, 2] and res['workers']['speedup'] > 0
    table = r.stdout.splitlines()
    assert any(l.split()[:3] == ['size', 'depth', 'resdepth'] for l in table), r.stdout
    for k in TARGETS:  # one line per target: the figure, the target and whether it was met
        line = next(l for l in table if l.startswith(k))
        assert f'target {"<=" if k == "overhead_share" else ">="} {TARGETS[k]}: ' in line, line
        assert line.rsplit(': ', 1)[1] == ('met' if res['met'][k] else 'NOT met'), line
    assert f'figures written to {out}' in r.stdout
