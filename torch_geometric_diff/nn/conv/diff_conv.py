import math
import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter

from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils import spmm

from torch_geometric_diff.nn.diffusion.dropout import draw_seed, dropout_mask
from torch_geometric_diff.nn.diffusion.fused import diffuse
from torch_geometric_diff.nn.diffusion.implicit import implicit_diffuse
from torch_geometric_diff.nn.diffusion.operator import (
    DiffusionOperator,
    accumulation_dtype,
    build_operator,
    check_number,
    edge_operator,
    graph_entries,
    node_features,
)
from torch_geometric_diff.nn.diffusion.spectrum import (
    check_stability,
    lambda_max_bound,
)
from torch_geometric_diff.nn.diffusion.uncached import diffuse_edges

NORMALIZATIONS = ('sym', 'rw', None)
ENGINES = ('fused', 'autograd')
SCHEMES = ('explicit', 'implicit')


def _inverse_softplus(g: float) -> float:
    return g + math.log(-math.expm1(-g))


class DiffConv(MessagePassing):
    r"""The diffusion layer from the `"Diffusion Mechanism in Residual Neural
    Network: Theory and Applications" <https://arxiv.org/abs/2105.03155>`_
    paper (Diff-ResNet).

    .. math::
        \mathbf{X}^{(0)} &= \mathbf{X}

        \mathbf{X}^{(k)} &= \big(\mathbf{I} - \gamma \mathbf{L}\big)\,
        \mathrm{dropout}\big(\mathbf{X}^{(k-1)}\big),
        \qquad k = 1, \ldots, K

        \mathbf{X}^{\prime} &= \mathbf{X}^{(K)},

    where :math:`\mathbf{L} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1}) -
    \hat{\mathbf{A}}` is the Laplacian of the normalized adjacency matrix
    :math:`\hat{\mathbf{A}}`. With :obj:`normalize="sym"`,
    :math:`\hat{\mathbf{A}} = \tilde{\mathbf{D}}^{-1/2} (\mathbf{A} +
    \mathbf{I}) \tilde{\mathbf{D}}^{-1/2}` as in the paper's code and in
    :class:`~torch_geometric.nn.conv.GCNConv`; with :obj:`"rw"`,
    :math:`\hat{\mathbf{A}} = \tilde{\mathbf{D}}^{-1} (\mathbf{A} +
    \mathbf{I})`; with :obj:`None`, :math:`\hat{\mathbf{A}} = \mathbf{A}` is
    taken from :obj:`edge_weight` as given. :math:`\tilde{D}_{ii} = \sum_j
    (\mathbf{A} + \mathbf{I})_{ij}`, where :math:`A_{ij}` is the summed weight
    of the edges from source node :math:`j` to target node :math:`i`.
    Self-loops already in the input count towards :math:`A_{ii}`.

    :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}` is built once (and
    cached with :obj:`cached=True`) with the diagonal folded in, so every step
    is one sparse-dense product. By default the :math:`K` steps run as one
    fused autograd operation whose backward pass applies
    :math:`\mathbf{M}^{\top}` and regenerates the dropout masks instead of
    storing them: memory is flat in :math:`K` (see
    :mod:`torch_geometric_diff.nn.diffusion`). Dropout keeps every entry with
    probability :math:`1 - p` and scales by :math:`1/(1 - p)`, like
    :func:`torch.nn.functional.dropout`, with masks from a counter-based
    generator seeded from PyTorch's global generator.

    **Explicit or implicit steps.** :obj:`scheme="explicit"` (the default,
    the paper's) runs the forward-Euler steps above: one sparse product per
    step, memory-flat, but stable only for :math:`\gamma \le 2 /
    \lambda_{\max}(\mathbf{L})`, so strong diffusion needs many small steps.
    :obj:`scheme="implicit"` runs backward-Euler steps

    .. math::
        (\mathbf{I} + \gamma\mathbf{L})\,\mathbf{X}^{(k)} =
        \mathrm{dropout}\big(\mathbf{X}^{(k-1)}\big),

    stable for every :math:`\gamma > 0` (no stability warning applies), so a
    few large steps diffuse far: it fits when strong diffusion is wanted or
    :math:`2 / \lambda_{\max}` is small. Each step is a conjugate-gradient
    solve, batched over channels, to the relative residual :obj:`tol` in at
    most :obj:`max_iter` iterations (:attr:`last_cg_iterations` logs them):
    :math:`O(\sqrt{\kappa} \log(1/\mathrm{tol}))` sparse products, with
    :math:`\kappa \leq 1 + \gamma\lambda_{\max}` the condition number of
    :math:`\mathbf{I} + \gamma\mathbf{L}`; for a symmetric :math:`\mathbf{L}` a
    Jacobi (diagonal) preconditioner cuts the iterations 1.5--1.7 times on Cora
    and PubMed. The backward pass is one more solve per step, with flat memory
    (see :func:`~torch_geometric_diff.nn.diffusion.implicit_diffuse`). With
    :obj:`normalize="rw"`, where :math:`\mathbf{L} = \mathbf{I} -
    \hat{\mathbf{A}}`, one step is :math:`\frac{1}{1+\gamma}(\mathbf{I} -
    \frac{\gamma}{1+\gamma}\hat{\mathbf{A}})^{-1}\mathbf{X}`: APPNP's
    personalised PageRank with :math:`\alpha = 1/(1+\gamma)`. The solve needs
    a symmetric :math:`\mathbf{L}` (:obj:`"sym"` or :obj:`None` on an
    undirected graph) or one similar to it (:obj:`"rw"` on an undirected
    graph); it is not traced by :func:`torch.compile`, and
    :obj:`return_all`, explain mode and gradients w.r.t.
    :obj:`edge_weight` need the explicit scheme.

    Operator and states are :obj:`float32` for :obj:`float16` and
    :obj:`bfloat16` features (autocast is off inside the layer), else in
    :obj:`x`'s dtype, never :obj:`edge_weight`'s; the output is cast back,
    so half precision gives the float32 result rounded once.

    Without a cache (mini-batches, batches of graphs), each call builds the
    operator as an edge list of static shape and runs the steps as one
    custom op, so the layer compiles with :obj:`torch.compile(fullgraph=True)`
    without graph breaks, cached or not; compiled code checks the graph with
    an asynchronous assertion and skips the stability check.

    Explicit Euler is stable for :math:`\gamma\,\lambda_{\max}(\mathbf{L})
    \le 2`. Each built operator carries a cheap upper bound on
    :math:`\lambda_{\max}` (Gershgorin on a diagonal scaling of
    :math:`\mathbf{L}`); only past it is :math:`\lambda_{\max}` estimated by
    Lanczos, and a :class:`RuntimeWarning` names the safe step, with a 0.5%
    margin (see :mod:`~torch_geometric_diff.nn.diffusion.spectrum`).

    Args:
        step_size (float, optional): The step size :math:`\gamma > 0`.
            (default: :obj:`0.25`)
        num_steps (int, optional): The number of steps :math:`K \geq 0`;
            :obj:`0` is the identity. (default: :obj:`20`)
        dropout (float, optional): The dropout probability :math:`p \in [0,
            1)` applied to the node features before every step during
            training. (default: :obj:`0.`)
        normalize (str, optional): :obj:`"sym"`, :obj:`"rw"` or :obj:`None`.
            (default: :obj:`"sym"`)
        add_self_loops (bool, optional): If set to :obj:`False`, no unit
            self-loops are added before normalization. Self-loops cancel out
            of :math:`\mathbf{L}` when :obj:`normalize=None`.
            (default: :obj:`True`)
        cached (bool, optional): If set to :obj:`True`, the layer builds
            :math:`\mathbf{M}` on first execution and reuses it afterwards.
            Only for transductive learning on one graph.
            (default: :obj:`False`)
        learnable_step (bool, optional): If set to :obj:`True`,
            :math:`\gamma = \mathrm{softplus}(\rho)` is a trainable positive
            parameter initialised at :obj:`step_size`. (default: :obj:`False`)
        validate (bool, optional): If set to :obj:`False`, the values of
            the graph (node indices in range, weights finite and
            non-negative) are not checked, for trusted loaders; shapes and
            dtypes are always checked. The check is one fused
            :math:`O(|\mathcal{E}|)` reduction and one synchronisation per
            built operator. (default: :obj:`True`)
        engine (str, optional): :obj:`"fused"` for the memory-flat fused
            operation, :obj:`"autograd"` for a plain step-by-step loop through
            :meth:`propagate` (every activation kept). The layer uses the
            plain loop by itself when gradients must reach
            :obj:`edge_weight`, in explain mode and for
            :obj:`return_all=True`. Message passing hooks
            (:meth:`register_propagate_forward_pre_hook` and the like) fire
            only in the plain loop, once per step: the fused engine never
            calls :meth:`propagate` and warns when hooks are registered.
            (default: :obj:`"fused"`)
        scheme (str, optional): :obj:`"explicit"` (forward Euler) or
            :obj:`"implicit"` (backward Euler, solved by conjugate
            gradients). (default: :obj:`"explicit"`)
        tol (float, optional): The relative residual at which each implicit
            solve stops. (default: :obj:`1e-6`)
        max_iter (int, optional): The most CG iterations per implicit solve;
            a solve that does not converge within them warns.
            (default: :obj:`100`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.
            :obj:`flow="target_to_source"` reads :obj:`edge_index[0]` as the
            targets on every engine, as in
            :class:`~torch_geometric.nn.conv.GCNConv`; :obj:`aggr` must be
            :obj:`"add"`, since :math:`\mathbf{M}` defines the aggregation.

    Diffusion needs a square operator on one node type: under
    :func:`~torch_geometric.nn.to_hetero`, edge types within one node type
    work, and bipartite input (:obj:`x` as a tuple) raises a
    :class:`ValueError`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)`
          or sparse matrix :math:`(|\mathcal{V}|, |\mathcal{V}|)`
          or an operator from :meth:`build_operator` (built once per fixed
          mini-batch graph and reused across epochs),
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F)`, or
          :math:`(K + 1, |\mathcal{V}|, F)` with :obj:`return_all=True`
    """
    _cached_op: Optional[DiffusionOperator]

    def __init__(
        self,
        step_size: float = 0.25,
        num_steps: int = 20,
        dropout: float = 0.,
        normalize: Optional[str] = 'sym',
        add_self_loops: bool = True,
        cached: bool = False,
        learnable_step: bool = False,
        engine: str = 'fused',
        validate: bool = True,
        scheme: str = 'explicit',
        tol: float = 1e-6,
        max_iter: int = 100,
        **kwargs,
    ):
        aggr = kwargs.setdefault('aggr', 'add')
        if not isinstance(aggr, str) or aggr != 'add':
            raise ValueError(f"'aggr' must be 'add' (got {aggr!r}): the "
                             f"diffusion operator defines the aggregation")
        super().__init__(**kwargs)

        if normalize not in NORMALIZATIONS:
            raise ValueError(f"Unknown 'normalize' value {normalize!r} "
                             f"(expected one of {NORMALIZATIONS})")
        if engine not in ENGINES:
            raise ValueError(f"Unknown 'engine' {engine!r} "
                             f"(expected one of {ENGINES})")
        if not isinstance(validate, bool):
            raise ValueError(f"'validate' must be a bool (got {validate!r})")
        if scheme not in SCHEMES:
            raise ValueError(f"Unknown 'scheme' {scheme!r} "
                             f"(expected one of {SCHEMES})")
        if scheme == 'implicit' and engine == 'autograd':
            raise ValueError("scheme='implicit' solves its steps in one "
                             "operation; engine='autograd' needs "
                             "scheme='explicit'")

        self._cached_op = None
        self.scheme = scheme
        self.tol = check_number('tol', tol, False, lambda v: 0 < v < math.inf,
                           'a finite number > 0')
        self.max_iter = check_number('max_iter', max_iter, True, lambda v: v >= 1,
                                'an integer >= 1')
        #: The CG iterations of each implicit step of the last call.
        self.last_cg_iterations: Optional[List[int]] = None
        if learnable_step:
            self.step_param = Parameter(torch.empty(()))
        else:
            self.register_parameter('step_param', None)
        self.step_size = step_size
        self.num_steps = num_steps
        self.dropout = dropout
        self.normalize = normalize
        self.add_self_loops = add_self_loops
        self.cached = cached
        self.learnable_step = learnable_step
        self.engine = engine
        self.validate = validate
        self.reset_parameters()

    def reset_parameters(self):
        r"""Resets :math:`\gamma` to :obj:`initial_step_size` (the last
        :obj:`step_size` set) and clears the cache."""
        super().reset_parameters()
        self._set_step_param()
        self._cached_op = None

    def _set_step_param(self) -> None:
        if self.step_param is not None:
            with torch.no_grad():
                self.step_param.fill_(
                    _inverse_softplus(self.initial_step_size))

    @property
    def gamma(self) -> Tensor:
        r"""The current step size :math:`\gamma` as a 0-dim tensor."""
        if self.step_param is not None:
            return F.softplus(self.step_param)
        return torch.tensor(self.initial_step_size, dtype=torch.float64)

    @property
    def step_size(self) -> float:
        r"""The current step size :math:`\gamma` (for a learnable step, its
        trained value). Setting it validates the value, sets the step
        parameter of a learnable step, makes it the value that
        :meth:`reset_parameters` restores, and checks it against a cached
        operator."""
        return float(self.gamma.detach())

    @step_size.setter
    def step_size(self, value: float) -> None:
        value = check_number('step_size', value, False,
                        lambda v: 0 < v < math.inf, 'a finite number > 0')
        if self.step_param is not None and not float(F.softplus(
                torch.tensor(_inverse_softplus(value),
                             dtype=self.step_param.dtype))) > 0:
            raise ValueError(f"'step_size' {value!r} is too small to learn: "
                             f"softplus of its {self.step_param.dtype} "
                             f"parameter underflows to 0")
        self.initial_step_size = value
        self._set_step_param()
        op = self._cached_op
        if op is not None and self.scheme == 'explicit':
            check_stability(self.initial_step_size, op.lambda_bound,
                            lambda: op.lambda_max, self.__class__.__name__)

    @property
    def num_steps(self) -> int:
        r"""The number of steps :math:`K \geq 0`."""
        return self._num_steps

    @num_steps.setter
    def num_steps(self, value: int) -> None:
        self._num_steps = check_number('num_steps', value, True, lambda v: v >= 0,
                                  'an integer >= 0')

    @property
    def dropout(self) -> float:
        r"""The dropout probability :math:`p \in [0, 1)`."""
        return self._dropout

    @dropout.setter
    def dropout(self, value: float) -> None:
        self._dropout = check_number('dropout', value, False, lambda v: 0 <= v < 1,
                                'in [0, 1)')

    def forward(self, x: Tensor, edge_index: Adj,
                edge_weight: OptTensor = None,
                return_all: bool = False) -> Tensor:
        x = node_features(x, self.__class__.__name__)
        if torch.is_autocast_enabled(x.device.type):
            # The steps accumulate in float32 whatever autocast would pick.
            with torch.autocast(x.device.type, enabled=False):
                return self._forward(x, edge_index, edge_weight, return_all)
        return self._forward(x, edge_index, edge_weight, return_all)

    def _forward(self, x: Tensor, edge_index: Adj, edge_weight: OptTensor,
                 return_all: bool) -> Tensor:
        in_dtype = x.dtype
        x = x.to(accumulation_dtype(in_dtype))
        n = x.size(0)
        p = self.dropout if self.training else 0.0
        plain = return_all or self.engine == 'autograd' or self.explain
        op = self._cached_op
        if isinstance(edge_index, DiffusionOperator):  # Built beforehand.
            if edge_weight is not None:
                raise ValueError("'edge_weight' must be None with a prebuilt "
                                 "operator: its weights are built in")
            op = edge_index
        if op is None:
            row, col, weight = graph_entries(edge_index, n, edge_weight,
                                             x.dtype, self.flow,
                                             self.validate)
            if not (self.cached or plain or weight.requires_grad
                    or self.scheme == 'implicit'):
                return self._uncached(x, row, col, weight, p).to(in_dtype)
            op = self._operator(row, col, weight, n)
            if self.cached:
                self._cached_op = op
        elif op.num_nodes != n:
            what = ("cached operator" if op is self._cached_op else
                    "operator")
            raise ValueError(f"The {what} has {op.num_nodes} nodes but 'x' "
                             f"has {n} rows (a cached one is rebuilt after "
                             f"'reset_parameters()')")

        if self.scheme == 'implicit':
            out = self._implicit(x, op, p, plain)
        elif plain or op.edge_lval.requires_grad:
            out = self._plain_loop(x, op, p, return_all)
        else:
            self._warn_if_hooked()
            out = diffuse(x, op, self.gamma.to(x.device, x.dtype),
                          self.num_steps, p)
        return out.to(in_dtype)

    def _implicit(self, x: Tensor, op: DiffusionOperator, p: float,
                  plain: bool) -> Tensor:
        if plain or op.edge_lval.requires_grad:
            raise ValueError(
                "scheme='implicit' solves its steps in one operation: "
                "return_all=True, explain mode and gradients w.r.t. "
                "'edge_weight' need scheme='explicit'")
        self._warn_if_hooked()
        stats: dict = {}
        out = implicit_diffuse(x, op, self.gamma.to(x.device, x.dtype),
                               self.num_steps, p, tol=self.tol,
                               max_iter=self.max_iter,
                               sym_scale=op.sym_scale, stats=stats)
        self.last_cg_iterations = stats['iterations']  # For logging.
        return out

    def _hooks(self, *names: str) -> bool:
        return any(len(getattr(self, f'_{name}_forward{kind}_hooks')) > 0
                   for name in names for kind in ('_pre', ''))

    def _warn_if_hooked(self) -> None:
        if self._hooks('propagate', 'message', 'aggregate',
                       'message_and_aggregate'):
            fix = ("they need scheme='explicit' and engine='autograd'"
                   if self.scheme == 'implicit' else
                   "use engine='autograd' to run them (once per step)")
            warnings.warn(
                f"'{self.__class__.__name__}' has message passing hooks, but "
                f"the fused engine does not call propagate(), so they do not "
                f"fire; {fix}", UserWarning, stacklevel=4)

    def _uncached(self, x: Tensor, row: Tensor, col: Tensor, weight: Tensor,
                  p: float) -> Tensor:
        # The operator of this call only: an edge list of static shape and
        # one custom op, with no data-dependent branch under torch.compile.
        n = x.size(0)
        eo = edge_operator(row, col, weight, n, self.normalize,
                           self.add_self_loops)
        if not torch.compiler.is_compiling():
            bound = lambda_max_bound(eo.target, eo.source, eo.lval, n,
                                     stop_below=2.0 / self.step_size)
            check_stability(
                self.step_size, float(bound),
                lambda: build_operator(row, col, weight, n, self.normalize,
                                       self.add_self_loops).lambda_max,
                self.__class__.__name__, stacklevel=5)
        self._warn_if_hooked()
        return diffuse_edges(x, eo, self.gamma.to(x.device, x.dtype),
                             self.num_steps, p)

    def _plain_loop(self, x: Tensor, op: DiffusionOperator, p: float,
                    return_all: bool) -> Tensor:
        # Step by step through propagate(), with every activation kept; its
        # hooks fire once per step.
        gamma = self.gamma.to(x.device, x.dtype)
        if self.explain or gamma.requires_grad or op.edge_lval.requires_grad \
                or self.flow == 'target_to_source' \
                or self._hooks('message', 'aggregate'):
            # Differentiable per-edge weights of M: messages over edge_index,
            # written in the layer's flow.
            adj = op.edge_index
            if self.flow == 'target_to_source':
                adj = adj.flip(0)
            weight = op.edge_values(gamma, p, x.dtype)
        else:  # Fused sparse products over the CSR matrix.
            adj = op.matrix(gamma, p, x.dtype)
            weight = None
        seed = int(draw_seed()) if p > 0 else 0
        states = [x]
        h = x
        for k in range(self.num_steps):
            if p > 0:
                h = h * dropout_mask(seed, k, tuple(h.shape), p, h.device,
                                     h.dtype)
            h = self.propagate(adj, x=h, edge_weight=weight)
            states.append(h)
        return torch.stack(states) if return_all else h

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj, x: Tensor) -> Tensor:
        return spmm(adj_t, x, reduce=self.aggr)

    def build_operator(
        self,
        edge_index: Adj,
        num_nodes: int,
        edge_weight: OptTensor = None,
        dtype: torch.dtype = torch.float32,
    ) -> DiffusionOperator:
        r"""Validates the graph and builds
        :math:`\mathbf{M} = \mathbf{I} - \gamma\mathbf{L}` (all checks happen
        here, once per operator). The operator has the
        :func:`~.operator.accumulation_dtype` of :obj:`dtype`, whatever the
        dtype of :obj:`edge_weight`."""
        row, col, weight = graph_entries(edge_index, num_nodes, edge_weight,
                                         accumulation_dtype(dtype), self.flow,
                                         self.validate)
        return self._operator(row, col, weight, num_nodes)

    def _operator(self, row: Tensor, col: Tensor, weight: Tensor,
                  num_nodes: int) -> DiffusionOperator:
        op = build_operator(row, col, weight, num_nodes, self.normalize,
                            self.add_self_loops)
        if self.scheme == 'explicit':
            check_stability(self.step_size, op.lambda_bound,
                            lambda: op.lambda_max, self.__class__.__name__,
                            stacklevel=5)
        return op

    def __repr__(self) -> str:
        args = f'step_size={self.step_size:g}, ' \
               f'num_steps={self.num_steps}'
        if self.dropout > 0:
            args += f', dropout={self.dropout:g}'
        if self.normalize != 'sym':
            args += f', normalize={self.normalize!r}'
        if self.learnable_step:
            args += ', learnable_step=True'
        if self.scheme != 'explicit':
            args += f', scheme={self.scheme!r}'
        return f'{self.__class__.__name__}({args})'

