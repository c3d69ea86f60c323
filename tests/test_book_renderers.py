"`resdepth book` picks Quarto when it is on PATH and hands it the project, the output folder and the records."
import json, os, re, stat
from pathlib import Path
from conftest import ROOT, run_cli

FAKE_QUARTO = """#!/bin/sh
# stands in for Quarto: records how it was called, then writes a front page
out=""; prev=""
for a in "$@"; do [ "$prev" = "--output-dir" ] && out="$a"; prev="$a"; done
printf '{"args": "%s", "runs": "%s", "python": "%s", "study": "%s", "bench": "%s"}' "$*" "$RESDEPTH_RUNS" "$QUARTO_PYTHON" "$RESDEPTH_STUDY" "$RESDEPTH_BENCH" > "$CALLS"
mkdir -p "$out" && echo '<html>book</html>' > "$out/index.html"
"""

def project(root:Path, code:str)->Path:
    "A book of its own: a front page that prints the study it is shown and, optionally, a chapter running `code`."
    import nbformat
    (root/'book').mkdir(parents=True)
    def nb(path, *cells):
        n = nbformat.v4.new_notebook(cells=list(cells)); n.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
        nbformat.write(n, root/path)
    nb('index.ipynb', nbformat.v4.new_markdown_cell('# Front {.unnumbered}'),
       nbformat.v4.new_code_cell("import os\nprint('study', os.environ.get('RESDEPTH_STUDY'))"))
    nb('book/records.ipynb', nbformat.v4.new_markdown_cell('# Records {#sec-records}'), nbformat.v4.new_code_cell(code))
    nb('book/plain.ipynb', nbformat.v4.new_markdown_cell('# Plain'), nbformat.v4.new_code_cell("print(6 * 7)"))
    (root/'_quarto.yml').write_text("project: {type: book}\nbook:\n  title: T\n  chapters: [index.ipynb, book/records.ipynb, book/plain.ipynb]\n")
    return root

READ_RECORDS = """import json, os
from pathlib import Path
print('records', sorted(json.loads(p.read_text())['x'] for p in (Path(os.environ['RESDEPTH_RUNS'])/'s').glob('*.json')))"""

def test_quarto_is_used_when_installed(tmp_path):
    "Quarto gets the staged project: the chapters already executed by resdepth, and execution turned off in its _quarto.yml."
    import nbformat, yaml
    bin_ = tmp_path/'bin'; bin_.mkdir()
    q = bin_/'quarto'; q.write_text(FAKE_QUARTO); q.chmod(q.stat().st_mode | stat.S_IEXEC)
    calls, root = tmp_path/'calls.json', project(tmp_path/'proj', 'print(1)')
    p = run_cli('book', '--runs', tmp_path/'runs', '--study', 'pilot', '--out', tmp_path/'out', '--project', root,
                env={'PATH': f"{bin_}{os.pathsep}{os.environ['PATH']}", 'CALLS': str(calls)})
    assert p.returncode == 0 and 'rendered with quarto' in p.stdout, p.stdout + p.stderr
    c = json.loads(calls.read_text())
    stage = Path(c['args'].split()[1])
    assert c['args'].startswith(f'render {stage} --to html --output-dir {tmp_path/"out"}') and stage.parent == root/'.book-build'
    assert c['runs'] == str(tmp_path/'runs') and Path(c['python']).name.startswith('python')
    assert c['study'] == 'pilot' and c['bench'] == str(root/'bench')  # the chapters' study and the benchmark figures
    assert yaml.safe_load((stage/'_quarto.yml').read_text())['execute']['enabled'] is False
    front = nbformat.read(stage/'index.ipynb', 4)
    assert front.cells[0].source == '# Front {.unnumbered}'  # Quarto reads its own attributes
    assert front.cells[1].outputs[0]['text'] == 'study pilot\n'

def page_text(html:Path)->str: return ' '.join(re.sub(r'<[^>]+>', ' ', html.read_text()).split())

def test_rerender_reuses_what_did_not_change(tmp_path):
    """A second render of unchanged records executes nothing; a new record executes again only the chapter that reads
    records; the output says which ran and which were reused; titles carry no Quarto attributes."""
    root = project(tmp_path/'proj', READ_RECORDS)
    (tmp_path/'runs'/'s').mkdir(parents=True); (tmp_path/'runs'/'s'/'a.json').write_text('{"x": 1}')
    book = lambda: run_cli('book', '--runs', tmp_path/'runs', '--study', 's', '--out', tmp_path/'out', '--project', root,
                           '--renderer', 'jupyter-book')
    ran = lambda p: sorted(re.findall(r'^ran (\S+)', p.stdout, re.M))
    reused = lambda p: sorted(re.findall(r'^reused (\S+)', p.stdout, re.M))
    first = book()
    assert first.returncode == 0, first.stdout + first.stderr
    assert ran(first) == ['book/plain.ipynb', 'book/records.ipynb', 'index.ipynb'] and reused(first) == []
    assert 'records [1]' in page_text(tmp_path/'out'/'book'/'records.html')
    second = book()
    assert second.returncode == 0 and ran(second) == [] and len(reused(second)) == 3, second.stdout + second.stderr
    (tmp_path/'runs'/'s'/'b.json').write_text('{"x": 2}')
    third = book()
    assert third.returncode == 0 and ran(third) == ['book/records.ipynb'], third.stdout + third.stderr
    assert reused(third) == ['book/plain.ipynb', 'index.ipynb']
    assert 'records [1, 2]' in page_text(tmp_path/'out'/'book'/'records.html')
    html = (tmp_path/'out'/'book'/'records.html').read_text()
    assert '{#sec-records}' not in html and '{.unnumbered}' not in (tmp_path/'out'/'index.html').read_text()

def test_a_failing_chapter_is_one_line_naming_it(tmp_path):
    root = project(tmp_path/'proj', "raise RuntimeError('no records of study s')")
    p = run_cli('book', '--runs', tmp_path/'runs', '--study', 's', '--out', tmp_path/'out', '--project', root, '--renderer', 'jupyter-book')
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert 'chapter' in p.stderr and 'book/records.ipynb' in p.stderr and 'RuntimeError: no records of study s' in p.stderr

def test_asking_for_quarto_without_it_is_one_line(tmp_path):
    p = run_cli('book', '--renderer', 'quarto', '--project', ROOT, env={'PATH': '/usr/bin:/bin'})
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and 'quarto is not on PATH' in p.stderr

def test_outside_a_checkout_is_one_line(tmp_path):
    p = run_cli('book', '--project', tmp_path)
    assert p.returncode == 2 and '_quarto.yml' in p.stderr and len(p.stderr.strip().splitlines()) == 1
