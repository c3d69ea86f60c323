"""One study, one protocol: `resdepth run` refuses to add a cell whose protocol differs from any finished record in the
study's folder (not only the cells it is asked for), with the local and the Ray backend and in a dry run, and writes
nothing."""
from pathlib import Path
from conftest import run_cli

def listing(folder: Path) -> list:
    "Every file and folder under `folder`, hidden ones included, with its modification time."
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns) for p in folder.rglob('*'))

def test_a_cell_under_another_protocol_is_refused_and_nothing_is_written(tmp_path, shared_data):
    grid = ['run', '--study', 'proto', '--datasets', 'breastmnist', '--sizes', '28', '--seeds', '0',
            '--data-dir', shared_data, '--out', tmp_path]
    first = run_cli(*grid, '--depths', '1', '--epochs', '1')
    assert first.returncode == 0, first.stdout + first.stderr
    before = listing(tmp_path)
    for backend in ([], ['--backend', 'ray'], ['--dry-run']):  # the Ray driver plans before it starts Ray
        r = run_cli(*grid, '--depths', '2', '--epochs', '2', *backend)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (backend, r.stdout, r.stderr)
        assert 'breastmnist-28-d1-s0.json was made with epochs=1 but this run asks for epochs=2' in r.stderr, r.stderr
        assert listing(tmp_path) == before, backend
