r"""Resume from a JSON-lines results file: a run counts as done exactly when
a record with the same value in every key field is in the file, whether it
was written by this process or an earlier one."""
from benchmarks.common import JSONLResults

KEYS = ('dataset', 'split', 'init')


def test_done_needs_every_key_field_and_sees_own_appends(tmp_path):
    path = str(tmp_path / 'runs.jsonl')
    a = {'dataset': 'Cora', 'split': 0, 'init': 0, 'acc': 0.8}
    b = {'dataset': 'Cora', 'split': 0, 'init': 1, 'acc': 0.7}
    others = [{'dataset': 'Cora', 'split': 0, 'init': 2},
              {'dataset': 'Cora', 'split': 1, 'init': 0},
              {'dataset': 'CiteSeer', 'split': 0, 'init': 0}]
    with JSONLResults(path, KEYS) as res:
        assert not res.done(a)
        res.append(a)
        # Done right after the append, whatever the non-key fields hold.
        assert res.done(a) and res.done(dict(a, acc=None))
        assert not res.done(b)
        res.append(b)
        assert res.done(b)
        assert not any(res.done(r) for r in others)

    with JSONLResults(path, KEYS) as res:  # A rerun of the same command.
        assert list(res) == [a, b] and len(res) == 2
        assert res.done(a) and res.done(b)
        assert not any(res.done(r) for r in others)
        # A missing key field is null, and nested values compare by
        # content.
        res.append({'dataset': 'Cora', 'split': {'b': 1, 'a': 2}})
        assert res.done({'dataset': 'Cora', 'split': {'a': 2, 'b': 1},
                         'init': None})
        assert not res.done({'dataset': 'Cora', 'split': {'a': 2, 'b': 1},
                             'init': 0})
