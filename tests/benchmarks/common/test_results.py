import json

from torch_geometric_diff.nn.diffusion import cpu_kernels
from benchmarks.common import JSONLResults, environment_info, read_jsonl


def test_environment_info_records_versions_and_kernels():
    loaded = cpu_kernels() is not None  # builds them where possible
    info = environment_info()
    for key in ('python', 'torch', 'torch_geometric', 'torch_geometric_diff',
                'cpu', 'num_threads', 'cpp_kernels'):
        assert key in info
    assert info['cpp_kernels'] is loaded
    json.dumps(info)  # Every value must serialise.


def test_jsonl_results_append_and_read_back(tmp_path):
    path = str(tmp_path / 'r.jsonl')
    res = JSONLResults(path, key_fields=('a', ))
    res.append({'a': 1, 'x': 0.5})
    with open(path, 'a') as f:
        f.write('{"a": 2, "x"')  # a torn last line
    assert read_jsonl([path]) == [{'a': 1, 'x': 0.5}]
