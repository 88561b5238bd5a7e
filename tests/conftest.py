import os
import shutil
from typing import Callable

import pytest
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_DATA = os.environ.get(
    'TGD_SHARED_DATA',
    os.path.join(_HERE, '..', '..', 'shared', 'data'),
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'slow: long checks, run with -m slow')
    # Test tensors are small: one intra-op thread avoids OpenMP wake-up
    # stalls that dominate tiny sparse products on a loaded 2-core machine.
    torch.set_num_threads(int(os.environ.get('TGD_TEST_THREADS', '1')))


@pytest.fixture(scope='session')
def data_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    r"""Returns ``copy(name)``: a writable copy of ``$TGD_SHARED_DATA/name``
    (for example ``'Planetoid'``), made once per session. The test is skipped
    when the shared raw files are absent."""
    root = tmp_path_factory.mktemp('data')

    def copy(name: str) -> str:
        src = os.path.join(SHARED_DATA, name)
        if not os.path.isdir(src):
            pytest.skip(f"no shared data at '{src}' (set TGD_SHARED_DATA)")
        dst = os.path.join(root, name)
        if not os.path.isdir(dst):
            shutil.copytree(src, dst)
            for dirpath, dirnames, _ in os.walk(dst):  # Undo read-only bits.
                os.chmod(dirpath, 0o755)
        return str(dst)

    return copy
