"""Write README.md from nbs/index.ipynb (its markdown cells, in order); `--check` fails if README.md is stale.

nbdev's own `nbdev-readme` needs Quarto; this uses nbconvert, so the README can be made and checked anywhere.
"""
import sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]

def render() -> str:
    nb = nbformat.read(ROOT/'nbs'/'index.ipynb', as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type == 'markdown']
    body, _ = MarkdownExporter().from_notebook_node(nb)
    return '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->\n\n' + body.strip() + '\n'

if __name__ == '__main__':
    readme, text = ROOT/'README.md', render()
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("README.md does not match nbs/index.ipynb; run `python tools/readme.py` and commit the result")
    else: readme.write_text(text)
