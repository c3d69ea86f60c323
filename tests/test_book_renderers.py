"`resdepth book` picks Quarto when it is on PATH and hands it the project, the output folder and the records."
import json, os, stat
from pathlib import Path
from conftest import ROOT, run_cli

FAKE_QUARTO = """#!/bin/sh
# stands in for Quarto: records how it was called, then writes a front page
out=""; prev=""
for a in "$@"; do [ "$prev" = "--output-dir" ] && out="$a"; prev="$a"; done
printf '{"args": "%s", "runs": "%s", "python": "%s", "study": "%s", "bench": "%s"}' "$*" "$RESDEPTH_RUNS" "$QUARTO_PYTHON" "$RESDEPTH_STUDY" "$RESDEPTH_BENCH" > "$CALLS"
mkdir -p "$out" && echo '<html>book</html>' > "$out/index.html"
"""

def test_quarto_is_used_when_installed(tmp_path):
    bin_ = tmp_path/'bin'; bin_.mkdir()
    q = bin_/'quarto'; q.write_text(FAKE_QUARTO); q.chmod(q.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path/'calls.json'
    p = run_cli('book', '--runs', tmp_path/'runs', '--study', 'pilot', '--out', tmp_path/'out', '--project', ROOT/'book',
                 env={'PATH': f"{bin_}{os.pathsep}{os.environ['PATH']}", 'CALLS': str(calls)})
    assert p.returncode == 0 and 'rendered with quarto' in p.stdout, p.stdout + p.stderr
    c = json.loads(calls.read_text())
    assert c['args'].startswith(f'render {ROOT} --to html --output-dir {tmp_path/"out"}')
    assert c['runs'] == str(tmp_path/'runs') and Path(c['python']).name.startswith('python')
    assert c['study'] == 'pilot' and c['bench'] == str(ROOT/'bench')  # the chapters' study and the benchmark figures

def test_asking_for_quarto_without_it_is_one_line(tmp_path):
    p = run_cli('book', '--renderer', 'quarto', '--project', ROOT, env={'PATH': '/usr/bin:/bin'})
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and 'quarto is not on PATH' in p.stderr

def test_outside_a_checkout_is_one_line(tmp_path):
    p = run_cli('book', '--project', tmp_path)
    assert p.returncode == 2 and '_quarto.yml' in p.stderr and len(p.stderr.strip().splitlines()) == 1
