r"""The diffusion engine behind :class:`~torch_geometric_diff.nn.DiffConv`.

The operator of :math:`K` explicit Euler steps with per-step dropout is

.. math::
    \mathbf{X}^{(k)} = \mathbf{M}\,\big(\mathbf{m}^{(k)} \odot
    \mathbf{X}^{(k-1)}\big) / (1 - p), \qquad
    \mathbf{M} = \mathbf{I} - \gamma \mathbf{L},

with :math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) -
\hat{\mathbf{A}}`. The engine keeps :math:`\mathbf{M}` as one CSR matrix with
its diagonal folded in, so that every step is a single sparse-dense product.

* :mod:`~.operator`: graph validation, :class:`DiffusionOperator` and
  :func:`operator_values`, the one assembly of the values of
  :math:`\mathbf{M}`.
* :mod:`~.spectrum`: a cheap upper bound on :math:`\lambda_{\max}
  (\mathbf{L})`, its Lanczos estimate, and the stability check of explicit
  Euler.
* :mod:`~.dropout`: counter-based dropout masks (SplitMix64 over the element
  index, keyed by a seed and the step), reproducible on every device.
* :mod:`~.fused`: :func:`diffuse`, a :func:`torch.library.custom_op` whose
  backward pass runs :math:`\mathbf{M}^{\top}` and regenerates the masks, so
  peak memory does not grow with :math:`K`; and :func:`diffuse_reference`.
  Being a custom op, :func:`diffuse` is opaque to :func:`torch.compile`,
  which does not support sparse tensors itself.
* :mod:`~.uncached`: :func:`diffuse_edges`, the same fused steps on an
  operator built for one call as an edge list of static shape, which
  :func:`torch.compile` traces.
* :mod:`~.implicit`: :func:`implicit_diffuse`, backward-Euler steps
  :math:`(\mathbf{I} + \gamma\mathbf{L})\mathbf{X}' = \mathbf{X}` solved
  by conjugate gradients, stable for every :math:`\gamma`.
* :mod:`~.kernels`: the optional C++ CPU kernels and :func:`sparse_linear`.
"""
from .dropout import draw_seed, dropout_mask, mask_bits
from .kernels import cpu_kernels, cpu_kernels_loaded, sparse_linear
from .spectrum import check_stability, estimate_lambda_max, lambda_max_bound
from .operator import DiffusionOperator, build_operator, operator_values
from .fused import diffuse, diffuse_reference
from .uncached import diffuse_edges
from .implicit import implicit_diffuse, rw_sym_scale

__all__ = [
    'DiffusionOperator',
    'build_operator',
    'operator_values',
    'dropout_mask',
    'mask_bits',
    'draw_seed',
    'diffuse',
    'diffuse_reference',
    'diffuse_edges',
    'implicit_diffuse',
    'rw_sym_scale',
    'estimate_lambda_max',
    'lambda_max_bound',
    'check_stability',
    'cpu_kernels',
    'cpu_kernels_loaded',
    'sparse_linear',
]
