"""Every executed cell notebook ends with its learning curve, after its record is written, and renders to a page of its own."""
import base64, contextlib, io, json
from pathlib import Path
import nbformat
from conftest import E2E_IDS, ROOT
from resdepth.cells import render_cell_pages

TEMPLATE = ROOT/'resdepth'/'templates'/'cell.ipynb'

def test_the_curve_comes_after_the_record_and_cannot_fail_the_cell():
    code = [c.source for c in nbformat.read(TEMPLATE, as_version=4).cells if c.cell_type == 'code']
    write = next(i for i, s in enumerate(code) if 'write_json(record_path' in s)
    curve = next(i for i, s in enumerate(code) if 'show_learning_curve' in s)
    assert write < curve
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # a history the figure cannot be drawn from: the cell reports it and ends normally
        exec(code[curve], dict(record=dict(status='ok', cell_id='x', history=[None], tested_epoch=0)))
    assert printed.getvalue().startswith('the learning curve could not be drawn: '), printed.getvalue()

def test_executed_notebooks_end_with_the_learning_curve_and_become_pages(e2e_grid, tmp_path):
    study = e2e_grid[0]/'e2e'
    for i in E2E_IDS:
        last = [c for c in nbformat.read(study/f'{i}.ipynb', as_version=4).cells if c.cell_type == 'code'][-1]
        pngs = [o.data['image/png'] for o in last.outputs if o.output_type == 'display_data' and 'image/png' in o.get('data', {})]
        assert len(pngs) == 1, last.outputs
        assert base64.b64decode(pngs[0])[:8] == b'\x89PNG\r\n\x1a\n' and len(pngs[0]) < 60_000
    n = render_cell_pages(study, tmp_path/'pages')
    assert n == dict(rendered=len(E2E_IDS), reused=0, removed=0, failed=0)
    page = (tmp_path/'pages'/f'{E2E_IDS[0]}.html').read_text()
    assert 'data:image/png;base64,' in page and 'href="../../book/cells.html#cfg-breastmnist-28-d1"' in page
    assert json.loads((tmp_path/'pages'/'.digests.json').read_text())['pages'].keys() == set(E2E_IDS)

def test_a_notebook_without_its_curve_gets_one_drawn_from_its_record(e2e_grid, tmp_path):
    "Notebooks executed before cells drew their own curve: the page draws it from the record; a failed record adds nothing."
    study, old = e2e_grid[0]/'e2e', tmp_path/'old'
    old.mkdir()
    for i, status in zip(E2E_IDS[:2], ('ok', 'failed')):
        nb = nbformat.read(study/f'{i}.ipynb', as_version=4)
        nb.cells = [c for c in nb.cells if 'show_learning_curve' not in c.source]
        nbformat.write(nb, old/f'{i}.ipynb')
        rec = json.loads((study/f'{i}.json').read_text()); rec['status'] = status
        (old/f'{i}.json').write_text(json.dumps(rec))
    assert render_cell_pages(old, tmp_path/'pages')['rendered'] == 2
    pages = [(tmp_path/'pages'/f'{i}.html').read_text() for i in E2E_IDS[:2]]
    assert [p.count('data:image/png;base64,') for p in pages] == [1, 0]
    assert 'drawn from the record when the book was made' in pages[0]
