"""`resdepth plan` forecasts a study from MedMNIST's published counts and probes on this machine, without reading or
writing a data file; `resdepth run` refuses a packing of cells that the forecast says cannot fit, before its first cell
and writing nothing, unless given `--no-fit-check`; more cells per device (`--workers`, Ray's `--gpus-per-cell`) need
more memory."""
import contextlib, io, json, time
from conftest import run_cli
from resdepth.cli import main
from resdepth.data import DATASETS, SIZES

def cli(*args)->tuple[int, str, str]:
    "Run `resdepth` in this process: (exit status, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()

def test_plan_of_the_published_grid_from_an_empty_data_folder(tmp_path):
    data = tmp_path/'data'; data.mkdir()
    t0 = time.perf_counter()
    r = run_cli('plan', 'liu2024', '--device', 'cpu', '--json', tmp_path/'plan.json', env=dict(RESDEPTH_DATA=str(data)))
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for d in DATASETS:
        for s in SIZES:
            assert sum(l.split()[:2] == [d, str(s)] for l in lines) == 1, (d, s, r.stdout)
    assert sum(l.startswith('total: 1,280 cells, ') and 'cell-hours' in l for l in lines) == 1, r.stdout
    assert list(data.iterdir()) == []  # nothing downloaded, copied or written: the plan reads MedMNIST's INFO
    plan = json.loads((tmp_path/'plan.json').read_text())
    row = next(t for t in plan['table'] if t['dataset'] == 'organamnist' and t['size'] == 224)
    assert (len(plan['table']), plan['totals']['cells'], row['cells']) == (32, 1280, 40)
    assert row['data_bytes'] == 58_830 * 224 * 224 and row['train'] + row['valid'] + row['test'] == 58_830, row
    assert took < 120, f"resdepth plan liu2024 took {took:.0f} s"

SMALL = ['--study', 'fit', '--datasets', 'breastmnist', '--sizes', '28', '--depths', '1', '--seeds', '0', '--epochs', '1', '--device', 'cpu']

def test_run_refuses_a_packing_that_does_not_fit_unless_told_not_to_check(tmp_path, shared_data):
    out = tmp_path/'runs'
    r = run_cli('run', *SMALL, '--gpu-mem', '0.01', '--data-dir', shared_data, '--out', out)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and 'breastmnist-28-d1-s0 does not fit on cpu: it needs 1 x ' in err[0], err
    assert 'the limit is 10.24 MiB (the limit given)' in err[0] and '--no-fit-check' in err[0], err
    assert not out.exists() or not any(out.rglob('*')), sorted(out.rglob('*'))
    r = run_cli('run', *SMALL, '--gpu-mem', '0.01', '--no-fit-check', '--data-dir', shared_data, '--out', out)
    assert r.returncode == 0 and '[1/1] breastmnist-28-d1-s0' in r.stdout, r.stdout + r.stderr
    assert [p.name for p in (out/'fit').glob('*.json')] == ['breastmnist-28-d1-s0.json']

def test_more_cells_per_device_need_more_memory(tmp_path):
    code, out, err = cli('plan', *SMALL, '--json', tmp_path/'plan.json')
    assert code == 0, err
    peak = json.loads((tmp_path/'plan.json').read_text())['table'][0]['peak_bytes']
    limit = str(2 * peak / 2**30)  # GiB: one cell fits, three or four do not
    for args, fits in ((['--workers', '3'], False), (['--workers', '1'], True),
                       (['--backend', 'ray', '--gpus-per-cell', '0.25'], False), (['--backend', 'ray', '--gpus-per-cell', '1'], True)):
        code, out, err = cli('run', *SMALL, '--gpu-mem', limit, '--out', tmp_path/'runs', '--dry-run', *args)
        assert code == (0 if fits else 2), (args, out, err)
        if fits: assert 'fit check: every cell fits, 1 per device' in out, (args, out)
        else: assert f"needs {args[-1] if args[0] == '--workers' else 4} x " in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path/'runs').exists()
