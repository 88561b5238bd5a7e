from setuptools import find_packages, setup

__version__ = '0.1.0'

install_requires = [
    'torch>=2.1',
    'torch-geometric>=2.5',
    'numpy',
    'scipy',
    'tqdm',
    'ninja',  # builds the optional C++ CPU kernels on first use
]

extras_require = {
    'ogb': ['ogb>=1.3.6', 'pymetis'],
    'bench': ['matplotlib', 'pillow', 'scikit-learn', 'pandas'],
    'test': ['pytest', 'scikit-learn'],
    'full': ['torch-scatter', 'torch-sparse'],
}
extras_require['dev'] = sorted(
    set(extras_require['ogb'] + extras_require['bench'] +
        extras_require['test']))

setup(
    name='torch_geometric_diff',
    version=__version__,
    description='Diff-ResNet diffusion layers for PyTorch Geometric',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author='torch_geometric_diff developers',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['torch_geometric_diff',
                                    'torch_geometric_diff.*']),
    package_data={'torch_geometric_diff': ['csrc/*.cpp']},
    install_requires=install_requires,
    extras_require=extras_require,
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
