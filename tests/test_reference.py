"The library reference made from the checkout's real notebooks, built by Jupyter Book: signatures and docstrings show, no Quarto syntax."
import re, subprocess, sys
from pathlib import Path
import nbformat, yaml
from bs4 import BeautifulSoup
from resdepth.reference import reference_notebooks, for_myst, KEY_FILE

ROOT = Path(__file__).resolve().parents[1]
PAGES = ['models', 'grid', 'stats']


def test_reference_pages_build_with_jupyter_book(tmp_path):
    pages = reference_notebooks(ROOT, tmp_path/'ref')
    names = [p.stem for p in pages]
    assert 'index' not in names and set(PAGES) <= set(names), names
    assert names.index('core') < names.index('models') < names.index('stats')  # nbdev's order: by notebook number
    assert (tmp_path/'ref'/KEY_FILE).is_file()
    book = tmp_path/'book'
    (book/'reference').mkdir(parents=True)
    for n in PAGES:
        nb = nbformat.read(tmp_path/'ref'/f'{n}.ipynb', as_version=4)
        assert nb.cells[0].cell_type == 'raw' and 'title:' in nb.cells[0].source  # nbdev's front matter, for Quarto
        nbformat.write(for_myst(nb), book/'reference'/f'{n}.ipynb')
    (book/'intro.md').write_text('# Front\n\nA front page.\n')
    (book/'_toc.yml').write_text(yaml.safe_dump(dict(format='jb-book', root='intro', parts=[
        dict(caption='Library reference', chapters=[dict(file=f'reference/{n}') for n in PAGES])]), sort_keys=False))
    (book/'_config.yml').write_text(yaml.safe_dump(dict(title='t', only_build_toc_files=True, execute=dict(execute_notebooks='off'))))
    jb = Path(sys.executable).parent/'jupyter-book'
    r = subprocess.run([str(jb), 'build', str(book)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    html = {n: BeautifulSoup((book/'_build'/'html'/'reference'/f'{n}.html').read_text(), 'html.parser') for n in PAGES}
    text = {n: h.find('main').get_text(' ') for n, h in html.items()}
    for n, t in text.items():
        for quarto in ['#|', '{.unnumbered}', '{target', ':::', 'output: asis', 'show_doc(']: assert quarto not in t, (n, quarto)
    stats = text['stats']
    assert html['stats'].find('h1').get_text().startswith('Statistics')  # the front matter's title is the page's heading
    assert re.search(r'def\s+load_records\s*\(\s*root\s*:', stats), 'signature missing'
    assert 'one row each' in stats  # load_records' docstring
    assert re.search(r'def\s+truncated_resnet\s*\(', text['models']) and 'residual stages kept' in text['models']  # docments
    assert re.search(r'def\s+run_grid\s*\(', text['grid'])
    ids = {t['id'] for t in html['stats'].find_all(id=True)}
    links = [a['href'] for a in html['stats'].find_all('a', href=True) if a['href'].startswith('stats.html#')]
    assert links and all(l.split('#')[1] in ids for l in links), [l for l in links if l.split('#')[1] not in ids]
