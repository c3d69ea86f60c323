"""The commands that README.md and the book's running chapter show work as written.

Every line of their ```bash blocks is read. Each `resdepth run` command is checked with `--dry-run` (the study, its
YAML file, every option, the scale-out options and the protocol, exactly as a real run checks them, without training);
`status` and `studies` run on an empty results folder; two commands run for real, shortened to one cell of one epoch
(the README's first, `resdepth run`, is the run test_offline_default checks: conftest's `quick_offline`, run once);
`book`, `bench`, `plan`, `data` and `search` are only parsed, for the reasons in `PARSED_ONLY`. A line that is not a resdepth command must be
listed in `OTHER_COMMANDS` with the reason it is not run. YAML files the commands name are written from the documents'
```yaml blocks whose first line is `# <file>.yaml`.
"""
import contextlib, io, re, shlex
from pathlib import Path
import papermill as pm
import pytest
from conftest import ROOT, QUICK_SHORT, run_cli
from resdepth.cli import main, _parser

DOCS = (ROOT/'README.md', ROOT/'book'/'running.qmd')
VARIABLES = dict(SLURM_ARRAY_TASK_ID='15', SLURM_ARRAY_TASK_COUNT='16')  # the Slurm script's array: --array=0-15
OTHER_COMMANDS = {  # first word of a documented line that is not a resdepth command -> why this test does not run it
    'python3': 'creates the virtual environment the tests already run in',
    'pip': 'installs resdepth, which the tests already use',
    'export': 'sets RESDEPTH_DATA; the dry runs read no data, the real runs get the test data with --data-dir',
    'bash': '.ci/run is the whole test suite, this file included',
    'ray': 'starts Ray daemons on the machine; the Ray commands are checked with --dry-run, which needs no cluster',
    'papermill': 'trains a full 50-epoch cell; test_papermill_commands_name_real_parameters checks its template and parameters',
}
PARSED_ONLY = {  # resdepth subcommand -> why it is only parsed here
    'book': 'renders the whole book (minutes); test_end_to_end and test_study_book render it from real records',
    'bench': 'measures this machine for minutes; its figures are checked where bench/*.json is read (test_study_book)',
    'plan': 'probes every size of the study (half a minute on a small CPU); test_plan runs `resdepth plan liu2024` and the packings',
    'data': 'imports a folder the documents name as an example; test_own_data imports a generated folder and a CSV as documented',
    'search': 'trains the race it documents; test_own_data runs `resdepth search --datasets NAME` on an imported dataset, resumed',
}
SHORT = ['--datasets', 'breastmnist', '--sizes', '28', '--depths', '1', '--seeds', '0', '--epochs', '1']
RUN_FOR_REAL = {  # documented command -> the options that shorten it to one cell of one epoch
    'resdepth run': QUICK_SHORT,  # the quick study is BreastMNIST at 28 px; run offline from an empty folder (`quick_offline`)
    'resdepth run --study pneumonia-small.yaml': SHORT,  # the YAML file's grid, cut to one BreastMNIST cell
}

def blocks(text:str, lang:str)->list[str]: return re.findall(rf'^```{lang}\n(.*?)^```', text, re.M | re.S)

def documented_commands()->list[tuple[str, list[str]]]:
    "(source line, argv) of every command in the documents' bash blocks; `a && b` gives two."
    out = []
    for doc in DOCS:
        for block in blocks(doc.read_text(), 'bash'):
            for line in block.splitlines():
                if not line.strip() or line.lstrip().startswith('#'): continue  # comments, #!/bin/bash, #SBATCH
                words = shlex.split(re.sub(r'\$(\w+)', lambda m: VARIABLES[m.group(1)], line), comments=True)
                while words:
                    n = words.index('&&') if '&&' in words else len(words)
                    out.append((line.strip(), words[:n])); words = words[n + 1:]
    return out

def resdepth_commands(sub:str|None=None)->list[list[str]]:
    "argv (without the program) of every documented resdepth command, or of those of subcommand `sub`."
    cmds = dict.fromkeys(tuple(w[1:]) for _, w in documented_commands() if Path(w[0]).name == 'resdepth')  # each once
    return [list(c) for c in cmds if sub is None or c[0] == sub]

def yaml_files(folder:Path)->list[Path]:
    "Write every documented YAML file (a ```yaml block starting with `# <name>.yaml`) into `folder`."
    out = []
    for doc in DOCS:
        for block in blocks(doc.read_text(), 'yaml'):
            m = re.match(r'# ([\w.-]+\.ya?ml)\n', block)
            if m: (folder/m.group(1)).write_text(block); out.append(folder/m.group(1))
    return out

def cli(*args)->tuple[int, str, str]:
    "Run `resdepth` in this process: (exit status, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()

def test_every_documented_line_is_a_known_command():
    cmds = documented_commands()
    assert len(resdepth_commands('run')) >= 10, cmds  # the blocks were found
    unknown = {w[0] for _, w in cmds if Path(w[0]).name != 'resdepth' and Path(w[0]).name not in OTHER_COMMANDS}
    assert not unknown, f"documented commands this test does not know: {unknown}; check them here or list them in OTHER_COMMANDS"
    subs = {c[0] for c in resdepth_commands()}
    assert subs <= {'run', 'status', 'studies'} | set(PARSED_ONLY), subs
    for argv in resdepth_commands():  # every documented command parses: no misspelt or removed option
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try: _parser().parse_args(argv)
            except SystemExit: pytest.fail(f"`resdepth {shlex.join(argv)}` does not parse: {err.getvalue()}")

@pytest.mark.parametrize('argv', resdepth_commands('run'), ids=shlex.join)
def test_documented_run_command_passes_a_dry_run(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path); yaml_files(tmp_path)
    # the last --out wins over a documented one; the fit check is left out: it depends on this machine's memory (four 224 px
    # CPU cells side by side do not fit in 24 GB), and test_plan checks it
    code, out, err = cli(*argv, '--out', tmp_path/'runs', '--dry-run', '--no-fit-check')
    assert code == 0, f"`resdepth {shlex.join(argv)}` fails: {err}"
    assert out.splitlines()[-1].startswith('dry run: nothing trained'), out
    assert not (tmp_path/'runs').exists()

@pytest.mark.parametrize('argv', resdepth_commands('status') + resdepth_commands('studies'), ids=shlex.join)
def test_documented_status_and_studies_commands_run(argv, tmp_path):
    code, out, err = cli(*argv, *(['--out', str(tmp_path)] if argv[0] == 'status' else []))
    assert code == 0, err
    assert ('pending' in out) if argv[0] == 'status' else ('quick: 12 cells' in out), out

def test_a_stale_command_fails_the_dry_run(tmp_path):
    "The check has teeth: the README's former example, a new study name without its axes, is refused."
    code, out, err = cli('run', '--epochs', '5', '--study', 'quick-5ep', '--out', tmp_path, '--dry-run')
    assert code == 2 and 'unknown study' in err

@pytest.mark.parametrize('command', RUN_FOR_REAL)
def test_documented_command_runs_shortened(command, tmp_path, shared_data, request):
    documented = [shlex.join(['resdepth', *c]) for c in resdepth_commands('run')]
    assert command in documented, f"{command!r} is no longer documented; update RUN_FOR_REAL"
    argv = shlex.split(command)[1:]
    if command == 'resdepth run':  # run once per session, from an empty folder with the data the package ships
        cwd, r = request.getfixturevalue('quick_offline')
        assert r.args[1:] == [*argv, *RUN_FOR_REAL[command]], r.args
    else:
        cwd = tmp_path; yaml_files(tmp_path)
        r = run_cli(*argv, *RUN_FOR_REAL[command], '--data-dir', shared_data, '--out', tmp_path/'runs', cwd=tmp_path)
    assert r.returncode == 0 and '[1/1]' in r.stdout, r.stdout + r.stderr
    study = 'quick' if command == 'resdepth run' else 'pneumonia-small'
    assert len(list((cwd/'runs'/study).glob('*.json'))) == 1
    books = [c for c in resdepth_commands('book') if '--study' in c]  # the book commands name the folders runs make
    if study != 'quick': assert ['book', '--study', study] in books, books

def test_papermill_commands_name_real_parameters():
    cmds = [w for _, w in documented_commands() if w[0] == 'papermill']
    assert cmds
    for w in cmds:
        template = ROOT/w[1]
        params = pm.inspect_notebook(str(template))
        names = [w[i + 1] for i, x in enumerate(w) if x == '-p']
        assert names and set(names) <= set(params), (names, sorted(params))
