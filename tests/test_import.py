"""`import_dataset` (resdepth.imports): a folder of images, a CSV or an .npz written as a dataset in MedMNIST's format with its
manifest; the imported name taken wherever a MedMNIST flag is; every bad input refused in one line with nothing written;
and an import killed with SIGKILL leaves no dataset and is cleaned up by the next one."""
import csv, json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
import resdepth
from resdepth.core import CellConfig, md5sum
from resdepth.data import check_dataset, load_split, n_channels, n_classes
from resdepth.imports import PARTS, import_dataset, leftovers, use_data_dir
from resdepth.studies import study_cells

CLASSES = {'benign': 12, 'malignant': 20, 'normal': 31}  # uneven
SHAPES = [(40, 30), (30, 40), (36, 36)]  # (width, height)

def image(rng, k:int, shape, colour:bool) -> Image.Image:
    "Class `k`'s image: brightness rising with k, noise; colour ones have a blue channel at half the others."
    w, h = shape
    a = np.clip(rng.normal(60 + 60 * k, 20, (h, w, 3) if colour else (h, w)), 0, 255).astype(np.uint8)
    if colour: a[..., 2] //= 2
    return Image.fromarray(a)

def make_tree(root:Path, seed=0) -> Path:
    "torchvision's ImageFolder layout: one folder per class, every third image colour, the rest gray, in three shapes."
    rng = np.random.default_rng(seed)
    for k, (c, n) in enumerate(CLASSES.items()):
        (root/c).mkdir(parents=True)
        for i in range(n): image(rng, k, SHAPES[i % 3], i % 3 == 0).save(root/c/f'{c}_{i:02d}.png')
    return root

def make_csv(root:Path, counts:dict, split=None, seed=1) -> Path:
    "Gray PNGs under root/img listed in root/list.csv with paths relative to it; `split(label, i)` fills a split column."
    rng = np.random.default_rng(seed)
    (root/'img').mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (label, n) in enumerate(counts.items()):
        for i in range(n):
            f = f'img/{label}_{i:02d}.png'
            image(rng, k, SHAPES[i % 3], False).save(root/f)
            rows.append(dict(path=f, label=label, **({'split': split(label, i)} if split else {})))
    with open(root/'list.csv', 'w', newline='') as fh:
        w = csv.DictWriter(fh, list(rows[0])); w.writeheader(); w.writerows(rows)
    return root/'list.csv'

def listing(d:Path) -> list: return sorted(p.name for p in d.iterdir()) if d.exists() else []

@pytest.fixture(scope='module')
def tree(tmp_path_factory): return make_tree(tmp_path_factory.mktemp('src')/'tree')

@pytest.fixture(scope='module')
def imported(tree, tmp_path_factory):
    "The tree imported as `tumours` at 28 and 64 px into a new data folder: (data folder, manifest, what it said)."
    data, said = tmp_path_factory.mktemp('imported')/'data', []
    return data, import_dataset('tumours', tree, sizes=(64, 28), path=data, log=said.append), said

def test_folder_import_writes_medmnist_files_and_manifest(tree, imported):
    data, m, said = imported
    assert listing(data) == ['tumours.json', 'tumours.npz', 'tumours_64.npz']
    total = sum(CLASSES.values())
    for f, z in (('tumours.npz', 28), ('tumours_64.npz', 64)):
        with np.load(data/f) as a:
            assert a.files == ['train_images', 'val_images', 'test_images', 'train_labels', 'val_labels', 'test_labels']
            assert [a[f'{p}_images'].shape for p in PARTS] == [(n, z, z, 3) for n in (43, 7, 13)]  # colour; 20% then 12.5%, rounded up
            assert {a[k].dtype for k in a.files} == {np.dtype(np.uint8)} and a['val_labels'].shape == (7, 1)
            y = {p: a[f'{p}_labels'][:, 0] for p in PARTS}
        assert np.bincount(np.concatenate(list(y.values()))).tolist() == list(CLASSES.values())  # every image, labels in class order
        assert all(set(v) == {0, 1, 2} for v in y.values())  # stratified: every class in every part
        assert {p: len(v) for p, v in y.items()} == m['counts']
    assert m == json.loads((data/'tumours.json').read_text())
    assert (m['name'], m['classes'], m['channels'], m['task'], m['sizes']) == ('tumours', sorted(CLASSES), 3, 'multi-class', [28, 64])
    colour = sum((n + 2) // 3 for n in CLASSES.values())  # every third image of each class
    assert m['channels_reason'] == f"{colour} of {total} images have channels that differ, e.g. {tree.resolve()/'benign'/'benign_00.png'}"
    assert m['files'] == {f: md5sum(data/f) for f in ('tumours.npz', 'tumours_64.npz')}
    assert {c: sum(m['class_counts'][p][c] for p in PARTS) for c in CLASSES} == CLASSES
    assert m['source'] == dict(path=str(tree.resolve()), kind='folder', md5=None)
    assert (m['how']['fit'], m['how']['seed'], m['skipped'], m['resdepth']) == ('crop', 0, [], resdepth.__version__)
    assert m['created'].endswith('+00:00')
    assert len(said) == 1 and said[0].startswith(f'imported tumours into {data}: 63 images (43 train, 7 val, 13 test), 3 classes, colour')

def test_the_first_image_is_its_source_cropped_and_resized(tree, imported):
    "Each part in path order: the first training image is the first training file's centre square, resized once at each size."
    data, m, _ = imported
    paths = sorted(str(p) for p in tree.rglob('*.png'))
    labels = np.array([sorted(CLASSES).index(Path(p).parent.name) for p in paths])
    from resdepth.imports import import_split, open_image, resized, square
    first = paths[np.flatnonzero(import_split(labels, 0) == 'train')[0]]
    src = square(open_image(first, 'RGB'))
    for f, z in (('tumours.npz', 28), ('tumours_64.npz', 64)):
        with np.load(data/f) as a: assert np.array_equal(a['train_images'][0], resized(src, z))

def test_importing_again_writes_the_same_bytes(tree, imported, tmp_path):
    m = import_dataset('tumours', tree, sizes=(28, 64), path=tmp_path, log=None)
    assert m['files'] == imported[1]['files']

def test_csv_without_split_is_split_and_numeric_labels_sort_as_numbers(tmp_path):
    src = make_csv(tmp_path/'src', {'10': 12, '2': 15})
    m = import_dataset('listed', src, sizes=(32,), path=tmp_path/'data', seed=3, log=None)
    assert m['classes'] == ['2', '10'] and m['channels'] == 1 and m['task'] == 'binary-class'
    assert m['counts'] == dict(train=18, val=3, test=6) and m['source']['kind'] == 'csv' and m['source']['md5'] == md5sum(src)
    assert m['how']['split'].startswith('stratified 70/10/20 under seed 3')
    with np.load(tmp_path/'data'/'listed_32.npz') as a: assert a['train_images'].shape == (18, 32, 32)

def test_csv_split_column_is_kept(tmp_path):
    part = lambda label, i: 'train' if i < 7 else 'val' if i < 9 else 'test'
    src = make_csv(tmp_path/'src', {'left': 11, 'right': 10}, split=part)
    m = import_dataset('given', src, sizes=(28,), path=tmp_path/'data', log=None)
    assert m['counts'] == dict(train=14, val=4, test=3) and m['how']['split'] == "the CSV's split column"
    assert m['class_counts']['test'] == {'left': 2, 'right': 1}
    parts = load_split('given', 28, split='official', path=tmp_path/'data')
    assert [parts[s][1].tolist() for s in ('valid', 'test')] == [[0, 0, 1, 1], [0, 0, 1]]  # in path order

def test_npz_source_keeps_its_parts(tmp_path, shared_data):
    "The official BreastMNIST file imported at its own 28 px: every image and label comes back as it was."
    m = import_dataset('breast-copy', shared_data/'breastmnist.npz', sizes=(28, 40), path=tmp_path, log=None)
    assert m['counts'] == dict(train=546, val=78, test=156) and m['classes'] == ['0', '1'] and m['channels'] == 1
    assert m['source']['md5'] == md5sum(shared_data/'breastmnist.npz') and m['how']['split'] == "the .npz's own parts"
    with np.load(shared_data/'breastmnist.npz') as a, np.load(tmp_path/'breast-copy.npz') as b:
        for k in a.files: assert np.array_equal(a[k], b[k]), k
    with np.load(tmp_path/'breast-copy_40.npz') as b: assert b['test_images'].shape == (156, 40, 40)

def test_imported_name_works_where_a_flag_does(imported, monkeypatch):
    data = imported[0]
    monkeypatch.setenv('RESDEPTH_DATA', str(data))
    assert check_dataset('tumours') == 'tumours' and (n_classes('tumours'), n_channels('tumours')) == (3, 3)
    for split, n in (('paper', None), ('official', imported[1]['counts'])):
        parts = load_split('tumours', 28, seed=1, split=split)
        assert sum(len(y) for _, y in parts.values()) == 63 and all(set(y) == {0, 1, 2} for _, y in parts.values())
        assert parts['train'][0].shape[1:] == (28, 28, 3)
        if n: assert [len(parts[s][1]) for s in ('train', 'valid', 'test')] == [n['train'], n['val'], n['test']]
    cells = study_cells('mine', datasets=['tumours'], sizes=[28, 64], depths=[1], seeds=[0, 1], epochs=1)
    assert [c.cell_id for c in cells] == ['tumours-28-d1-s0', 'tumours-28-d1-s1', 'tumours-64-d1-s0', 'tumours-64-d1-s1']
    with pytest.raises(ValueError, match='size 128 was not imported for tumours; it has 28, 64'):
        study_cells('mine', datasets=['tumours'], sizes=[128], depths=[1], seeds=[0])
    monkeypatch.delenv('RESDEPTH_DATA')
    with pytest.raises(ValueError, match="unknown dataset 'tumours'"): study_cells('mine', datasets=['tumours'], sizes=[28], depths=[1], seeds=[0])

def test_train_cell_reads_the_manifest_in_its_data_folder(imported, monkeypatch):
    "As in a kernel or a Ray worker without $RESDEPTH_DATA: the cell finds its dataset's classes and channels where its images are."
    from resdepth.train import train_cell
    monkeypatch.delenv('RESDEPTH_DATA', raising=False)
    with pytest.raises(ValueError, match="unknown dataset 'tumours'"): n_channels('tumours')
    try: r = train_cell(CellConfig(dataset='tumours', depth=1, epochs=1, device='cpu'), imported[0], log=None)
    finally: use_data_dir(None)
    assert (r['status'], r['n_classes'], r['in_chans'], r['n']) == ('ok', 3, 3, dict(train=37, valid=13, test=13))

def test_unreadable_files_are_refused_or_skipped_and_listed(tmp_path):
    src = make_tree(tmp_path/'src')
    (src/'normal'/'notes.png').write_text('not an image')
    good = (src/'normal'/'normal_00.png').read_bytes()
    (src/'normal'/'cut.png').write_bytes(good[:len(good) * 2 // 3])  # a valid header, its pixels cut short
    with pytest.raises(resdepth.core.ResdepthError, match=r"/normal/notes\.png is not an image Pillow can read; "):
        import_dataset('bad', src, path=tmp_path/'data', log=None)  # found from the files' headers, before decoding
    (src/'normal'/'notes.png').rename(tmp_path/'notes.png')
    with pytest.raises(resdepth.core.ResdepthError, match=r"/normal/cut\.png is unreadable \(image file is truncated"):
        import_dataset('bad', src, path=tmp_path/'data', log=None)  # found while decoding
    (tmp_path/'notes.png').rename(src/'normal'/'notes.png')
    assert listing(tmp_path/'data') == []
    said = []
    m = import_dataset('bad', src, sizes=(28,), path=tmp_path/'data', skip_bad=True, log=said.append)
    assert [(Path(s['path']).name, s['reason'].split(' (')[0]) for s in m['skipped']] == [('notes.png', 'not an image Pillow can read'), ('cut.png', 'unreadable')]
    assert 'image file is truncated' in m['skipped'][1]['reason'] and sum(m['counts'].values()) == 63
    assert '2 files Pillow cannot read were left out' in said[0]

def write_npz(f:Path, **change):
    "A small colour .npz in MedMNIST's format (labels 0, 1, 2 in every part), with arrays replaced or removed (None) by `change`."
    rng, arrays = np.random.default_rng(0), {}
    for p, n in (('train', 30), ('val', 6), ('test', 6)):
        arrays[f'{p}_images'] = rng.integers(0, 256, (n, 20, 30, 3), dtype=np.uint8)
        arrays[f'{p}_labels'] = (np.arange(n) % 3).astype(np.uint8).reshape(-1, 1)
    arrays.update(change)
    np.savez_compressed(f, **{k: v for k, v in arrays.items() if v is not None})
    return f

def bad_input(case:str, base:Path) -> tuple:
    "(keyword arguments of `import_dataset` for the bad input `case`, what its message says)."
    tree = lambda: make_tree(base/'tree')
    def csv_rows(text): (base/'img').mkdir(exist_ok=True); (base/'x.csv').write_text(text); return base/'x.csv'
    if case == 'missing source': return dict(source=base/'nothing'), f"SOURCE {base/'nothing'} does not exist"
    if case == 'no images':
        for c in ('a', 'b'): (base/'s'/c).mkdir(parents=True); (base/'s'/c/'readme.txt').write_text('x')
        return dict(source=base/'s'), 'holds no images (files ending in .jpg, .jpeg, .png'
    if case == 'empty class':
        t = tree(); [f.unlink() for f in (t/'benign').iterdir()]
        return dict(source=t), f"class folder {t/'benign'} holds no images"
    if case == 'no class folders':
        (base/'flat').mkdir(); image(np.random.default_rng(0), 0, (9, 9), False).save(base/'flat'/'a.png')
        return dict(source=base/'flat'), 'has no sub-folders'
    if case == 'empty csv': return dict(source=csv_rows('path,label\n')), 'lists no images'
    if case == 'csv columns': return dict(source=csv_rows('file,class\na.png,1\n')), "has no 'path' or 'label' column (its columns: file, class)"
    if case == 'csv missing file':
        src = make_csv(base, {'a': 10, 'b': 10})
        for f in ('a_03', 'b_01', 'b_07'): (base/'img'/f'{f}.png').unlink()
        return dict(source=src), f"lists {base/'img'/'a_03.png'}, which does not exist; 2 other listed files are missing too"
    if case == 'csv split values':
        return dict(source=make_csv(base, {'a': 10, 'b': 10}, split=lambda l, i: 'training' if i < 2 else 'test')), \
               "has the split value 'training' in 4 rows; use train, val or test"
    if case == 'one class': return dict(source=make_csv(base, {'a': 30})), "holds one class only ('a')"
    if case == 'too few for the split':
        return dict(source=make_csv(base, {'a': 9, 'b': 30})), \
               "class 'a' of {src} has 9 images; the stratified 70/10/20 split, which puts one of each class in every part, needs at least 10"
    if case == 'class absent from a part':
        return dict(source=make_csv(base, {'a': 10, 'b': 10}, split=lambda l, i: 'train' if i < 8 or (l == 'b' and i < 9) else 'val' if i == 8 else 'test')), \
               "class 'b' of {src} has no images in the val part"
    if case == 'too few for the paper split':
        return dict(source=make_csv(base, {'a': 4, 'b': 10}, split=lambda l, i: ('train', 'val', 'test')[min(i, 2)])), \
               "class 'a' of {src} has 4 images; the study's pooled 60/20/20 split (split='paper') needs at least 5"
    if case.startswith('name '): return dict(name=case[5:], source=tree()), f"dataset name {case[5:]!r}"
    if case == 'size 4': return dict(source=tree(), sizes=(28, 4)), 'image size 4 is not allowed; sizes are whole numbers of pixels from 8 to 1024'
    if case == 'size 2048': return dict(source=tree(), sizes=2048), 'image size 2048 is not allowed'
    if case == 'channels 2': return dict(source=tree(), channels=2), 'channels must be 1 (gray) or 3 (colour), not 2'
    if case == 'fit': return dict(source=tree(), fit='stretch'), "fit 'stretch' is not supported"
    if case == 'not an image':
        t = tree(); (t/'benign'/'x.png').write_bytes(b'\x89PNG nothing more')
        return dict(source=t), f"{t/'benign'/'x.png'} is not an image Pillow can read; remove or replace it, or pass --skip-bad"
    if case == 'other file kind': (base/'a.txt').write_text('x'); return dict(source=base/'a.txt'), 'is neither a folder, a .csv nor an .npz'
    if case == 'npz multi-label':
        return dict(source=write_npz(base/'m.npz', train_labels=np.zeros((30, 14), np.uint8))), 'is multi-label (train_labels is (30, 14): 14 labels per image)'
    if case == 'npz keys': return dict(source=write_npz(base/'k.npz', val_images=None)), "is not in MedMNIST's format: it has no val_images"
    if case == 'npz dtype':
        return dict(source=write_npz(base/'f.npz', test_images=np.zeros((6, 20, 30, 3), np.float32))), "test_images is float32 of shape (6, 20, 30, 3)"
    if case == 'npz not a zip': (base/'z.npz').write_text('x'); return dict(source=base/'z.npz'), 'cannot be read as an .npz'
    raise KeyError(case)

CASES = ['missing source', 'no images', 'empty class', 'no class folders', 'empty csv', 'csv columns', 'csv missing file',
         'csv split values', 'one class', 'too few for the split', 'class absent from a part', 'too few for the paper split',
         'name Bad', 'name breastmnist', 'name cifar10', 'name chestmnist-nofinding', 'name scans_64', 'size 4', 'size 2048',
         'channels 2', 'fit', 'not an image', 'other file kind', 'npz multi-label', 'npz keys', 'npz dtype', 'npz not a zip']

@pytest.mark.parametrize('case', CASES)
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path):
    data = tmp_path/'data'; data.mkdir(); (data/'breastmnist.npz').write_bytes(b'kept')  # a data folder already in use
    kw, says = bad_input(case, tmp_path)
    kw = dict(name='mine', sizes=(28,), path=data, log=None) | kw
    with pytest.raises((ValueError, resdepth.core.ResdepthError)) as e: import_dataset(**kw)
    msg = str(e.value)
    assert '\n' not in msg and says.format(src=Path(kw['source']).resolve()) in msg, msg
    assert listing(data) == ['breastmnist.npz'] and (data/'breastmnist.npz').read_bytes() == b'kept'

def test_an_import_larger_than_free_memory_is_refused_before_it_allocates(tree, tmp_path, monkeypatch):
    import resdepth.train
    free = 63 * (28 * 28 + 64 * 64) * 3 - 1  # a byte less than the colour tree's arrays at 28 and 64 px
    monkeypatch.setattr(resdepth.train, 'host_memory', lambda: dict(available=free, kind=None, limit=None, left=None))
    data = tmp_path/'data'
    with pytest.raises(resdepth.core.ResdepthError) as e: import_dataset('big', tree, sizes=(28, 64), path=data, log=None)
    assert '\n' not in str(e.value) and '63 colour images need' in str(e.value) and 'import fewer --sizes' in str(e.value), e.value
    assert listing(data) == []
    import_dataset('big', tree, sizes=(28,), path=data, log=None)  # the 28 px arrays alone fit
    assert listing(data) == ['big.json', 'big.npz']

def test_a_name_already_imported_is_refused_unless_replaced(imported, tree):
    data, m, _ = imported
    with pytest.raises(resdepth.core.ResdepthError) as e: import_dataset('tumours', tree, path=data, log=None)
    assert str(e.value) == (f"tumours is already imported in {data} (63 images, created {m['created']}); "
                            f"choose another name or pass --replace (replace=True)")
    assert json.loads((data/'tumours.json').read_text()) == m

KILLED = textwrap.dedent("""
    import sys, threading
    import numpy as np
    from resdepth.imports import import_dataset
    save, calls = np.savez_compressed, []
    def stalled(f, **arrays):  # the first file is written; the second is begun, then the process waits to be killed
        calls.append(1)
        if len(calls) == 1: return save(f, **arrays)
        f.write(b'PK partial'); f.flush()
        threading.Event().wait()
    np.savez_compressed = stalled
    import_dataset('killed', sys.argv[1], sizes=(28, 64), path=sys.argv[2], log=None)
""")

def test_an_import_killed_mid_way_leaves_no_dataset_and_the_next_cleans_up(tmp_path):
    src, data = make_tree(tmp_path/'src'), tmp_path/'data'
    p = subprocess.Popen([sys.executable, '-c', KILLED, str(src), str(data)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not [f for f in leftovers('killed', data) if f.name.startswith('.killed_64.npz.')]:  # wait until the second file is being written
        assert p.poll() is None, p.stderr.read()
        assert time.monotonic() < deadline, 'the import never began writing its second file'
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL); p.wait(); p.stderr.close()
    left = leftovers('killed', data)
    assert p.returncode == -signal.SIGKILL and [f.name.split('.')[1] for f in left] == ['killed_64']
    assert listing(data) == sorted([left[0].name, 'killed.npz'])  # the first file is whole, and there is no manifest
    with pytest.raises(ValueError, match="unknown dataset 'killed'"): check_dataset('killed', data)
    m = import_dataset('killed', src, sizes=(28, 64), path=data, log=None)
    assert leftovers('killed', data) == [] and listing(data) == ['killed.json', 'killed.npz', 'killed_64.npz']
    assert m['files'] == {f: md5sum(data/f) for f in ('killed.npz', 'killed_64.npz')} and check_dataset('killed', data) == 'killed'
