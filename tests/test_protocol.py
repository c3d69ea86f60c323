"""One study, one protocol: `resdepth run` refuses to add a cell whose protocol differs from any finished record in the
study's folder (not only the cells it is asked for), with the local and the Ray backend and in a dry run, and writes
nothing. The finished record is a copy of one of the session's `e2e_grid` records (made with epochs=2), not trained here."""
from pathlib import Path
from conftest import copy_cells, run_clis

def listing(folder: Path) -> list:
    "Every file and folder under `folder`, hidden ones included, with its modification time."
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns) for p in folder.rglob('*'))

def test_a_cell_under_another_protocol_is_refused_and_nothing_is_written(tmp_path, shared_data, e2e_grid):
    grid = ['run', '--study', 'proto', '--datasets', 'breastmnist', '--sizes', '28', '--seeds', '0',
            '--data-dir', shared_data, '--out', tmp_path]
    copy_cells(e2e_grid[0]/'e2e', tmp_path/'proto', 'breastmnist-28-d1-s0')  # the study's one finished cell, epochs=2
    before = listing(tmp_path)
    backends = ([], ['--backend', 'ray'], ['--dry-run'])  # the Ray driver plans before it starts Ray
    runs = run_clis(*([*grid, '--depths', '2', '--epochs', '3', *backend] for backend in backends))  # side by side: each is refused
    for backend, r in zip(backends, runs):
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (backend, r.stdout, r.stderr)
        assert 'breastmnist-28-d1-s0.json was made with epochs=2 but this run asks for epochs=3' in r.stderr, r.stderr
    assert listing(tmp_path) == before
