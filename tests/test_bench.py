"""`resdepth bench --quick` end to end on a plan small enough for CI: every part runs (matrix product, the three
training loops, runner overhead in a warm and a fresh kernel, one and two workers), the printed table names the
targets, and the JSON file holds every figure the book's performance appendix reads. The memory part (`memory=True`)
on files of a few hundred 224 px images: the figures are the generated files' and every target line says what they say."""
import json, os, subprocess, sys
import numpy as np
from medmnist import INFO
import resdepth.bench as rb
from resdepth.bench import MEMORY_TARGETS, PLANS, TARGETS, image_counts, write_official

# the --quick plan cut to one of everything: one depth, one epoch, one repeat, one fresh kernel, two cells per worker run
TINY = dict(matmul=(256,), throughput=[dict(sizes=(28,), depths=(1,), epochs=1, repeats=1)],
            overhead=dict(depths=(1, 2), epochs=1, n_fresh=1), workers=dict(depths=(1,), seeds=(0, 1), epochs=1),
            normalise=dict(epochs=1, repeats=1), memory=dict(scale=200 / 58830, train_batches=2, eval_chunks=2))

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

def _verdict(met): return 'not measured' if met is None else 'met' if met else 'NOT met'

def test_bench_memory_measures_the_generated_files_and_its_target_lines_say_what_the_figures_say(tmp_path, shared_data, monkeypatch):
    scale, files = TINY['memory']['scale'], tmp_path/'files'
    monkeypatch.setitem(PLANS, 'quick', {**TINY, 'memory': {**TINY['memory'], 'root': str(tmp_path/'scratch')}})
    for d in ('scratch', 'tmp'): (tmp_path/d).mkdir()
    monkeypatch.setenv('TMPDIR', str(tmp_path/'tmp'))  # the scratch folders of the forecast's and the cells' processes
    out, lines = tmp_path/'memory.json', []
    res = rb.bench(quick=True, path=shared_data, json_path=out, log=lines.append, memory=True)
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(res, default=str))
    assert set(saved) == {'quick', 'machine', 'targets', 'normalise', 'memory', 'met'} and saved['targets'] == json.loads(json.dumps(MEMORY_TARGETS))
    assert list((tmp_path/'scratch').iterdir()) == []  # the generated files are gone
    text = '\n'.join(lines).splitlines()
    cells = res['memory']['cells']
    assert [c['dataset'] for c in cells] == ['organamnist', 'bloodmnist'] and sum(cells[0]['images'].values()) == 199  # 200 images at the real shares, rounded per part
    for c in cells:
        flag = c['dataset']
        assert c['images'] == image_counts(flag, scale)
        f = write_official(flag, files, 224, c['images'])  # the same file again, read whole
        with np.load(f) as z:
            shapes = {k: z[k].shape for k in z.files}
            assert all(z[k].dtype == np.uint8 for k in z.files)
        rgb = INFO[flag]['n_channels'] == 3
        assert shapes == {**{f'{p}_images': (n, 224, 224) + ((3,) if rgb else ()) for p, n in c['images'].items()},
                          **{f'{p}_labels': (n, 1) for p, n in c['images'].items()}}
        pixels = sum(n * 224 * 224 * (3 if rgb else 1) for n in c['images'].values())  # N x C x H x W
        assert c['data_on_device_bytes'] == c['file_bytes'] == pixels
        assert c['eval_chunk'] == 16 and (c['train_batches'], c['valid_chunks']) == (2, min(2, -(-c['n']['valid'] // 16)))  # as many as there are
        assert c['test_images'] == min(32, c['n']['test'])
        assert c['peak_rss_bytes'] > pixels and c['peak_gpu_bytes'] is None
        assert c['forecast']['data_bytes'] == pixels  # the planner's forecast from the same image counts
        expect = dict(data_on_device=c['data_on_device_bytes'] / c['file_bytes'] <= 1.05,
                      host_peak=c['peak_rss_bytes'] <= 2 * c['file_bytes'] + 2**31,
                      forecast=abs(c['forecast']['host_peak_bytes'] - c['peak_rss_bytes']) / c['peak_rss_bytes'] <= 0.2)
        for k, met in expect.items():  # one line per target: its verdict is what the figures say
            line = next(l for l in text if l.startswith(f'{flag} 224 px {k} '))
            assert line.rsplit(': ', 1)[1] == _verdict(met) and c['checks'][k]['met'] == met, line
    share = res['normalise']['share']
    line = next(l for l in text if l.startswith('normalise_share '))
    assert f'{share:.4f}' in line and line.rsplit(': ', 1)[1] == _verdict(share < 0.03), line
    for k in ('data_on_device', 'host_peak', 'forecast'): assert res['met'][k] == all(c['checks'][k]['met'] for c in cells)
    assert res['met']['normalise_share'] == (share < 0.03) and f'figures written to {out}' in text
