"""`BatchNormalization`, on torch's fused batch-norm kernels."""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F

from kerasish import initializers
from kerasish.distribution import distribution_lib
from kerasish.layers import call_context
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.normalization.base_normalization import KERAS_BACKEND_EPSILON
from kerasish.layers.normalization.base_normalization import GammaBetaMixin
from kerasish.layers.normalization import swa_update_bn
from kerasish.layers.normalization import sync_convert
from kerasish.layers.normalization.base_normalization import canonical_axes
from kerasish.utils.argument_validation import check_number

# Keras's moving averages: `moving = moving * momentum + batch * (1 - momentum)`
# with the *biased* batch variance. torch's `momentum` is Keras's `1 - momentum`
# and torch updates `running_var` with the *unbiased* variance, so the running
# statistics are updated here, not by `F.batch_norm`.


def _sqrt_initializer(initializer):
    """`sqrt(initializer(shape))`: renorm's stddev weights start at the square
    root of the moving-variance initializer (Keras behaviour)."""

    def init(shape, dtype=None):
        return torch.sqrt(torch.as_tensor(initializer(shape, dtype=dtype)))

    return init


class BatchNormalization(GammaBetaMixin, Layer):
    """Layer that normalizes its inputs (Ioffe and Szegedy, 2015).

    Training (`training=True`): normalizes with the batch mean and *biased*
    variance and updates `moving = moving * momentum + batch * (1 - momentum)`.
    Inference: normalizes with `moving_mean` / `moving_variance`. A frozen layer
    (`layer.trainable = False`) always runs in inference mode, as in Keras.

    Differs from `torch.nn.BatchNorm*d`: momentum 0.99 means "keep 99%" (torch's
    0.01), epsilon defaults to 1e-3, the moving variance uses the biased batch
    variance, the channel axis is the last one by default, and layers start in
    inference mode. It is not a `torch.nn.modules.batchnorm._BatchNorm` (torch
    helpers that swap `_BatchNorm` modules for others leave it alone), but
    `torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)` sets
    `synchronized=True` on it (see `sync_convert.py`), and
    `torch.optim.swa_utils.update_bn` does recompute its moving statistics:
    the mean of the batch means and biased batch variances, see
    `swa_update_bn.py`. torch's protocol for that is here too:
    `reset_running_stats()` and `torch_momentum` (torch's convention,
    `1 - momentum`; `None` is the cumulative average).

    Args:
        axis: Integer, the features axis. Defaults to -1. A one-element list
            (as Keras 2 configs write it) is accepted.
        momentum: Momentum of the moving averages. Defaults to 0.99.
        epsilon: Small float added to the variance. Defaults to 1e-3.
        center: Whether to add the `beta` offset. Defaults to True.
        scale: Whether to multiply by `gamma`. Defaults to True.
        beta_initializer, gamma_initializer, moving_mean_initializer,
            moving_variance_initializer: Defaults to zeros, ones, zeros, ones.
        beta_regularizer, gamma_regularizer, beta_constraint,
            gamma_constraint: Optional. Defaults to None.
        renorm: Whether to use Batch Renormalization. Defaults to False.
        renorm_clipping: Dict with optional keys "rmax", "rmin", "dmax".
        renorm_momentum: Momentum of renorm's moving averages. Defaults to 0.99.
        synchronized: Accepted (Keras raises on non-TensorFlow backends); here
            the batch statistics are all-reduced over the default
            `torch.distributed` process group when one is initialized.
            While `fit` trains under `keras.distribution.DataParallel` on
            several processes the statistics are those of the global batch
            either way, as Keras computes them on JAX (its data-parallel
            step sees the whole batch): N processes equal one.
        **kwargs: Base layer arguments. Keras 2's `fused` is accepted and ignored.

    Call arguments:
        inputs: Tensor of any rank.
        training: Python bool, training or inference mode.
        mask: Optional, rank one less than `inputs`; `True` marks the positions
            used for the batch statistics (training mode only).

    Input shape: arbitrary. Output shape: same as input.

    Example:
        >>> bn = keras.layers.BatchNormalization()
        >>> y = bn(torch.randn(8, 4), training=True)  # updates the moving stats
    """

    _no_mode_watch = True  # (`no_mode_warning`)

    def _no_mode_matters(self):
        return bool(self.__dict__["_trainable"])  # (a frozen one runs in inference mode whatever the mode)

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        **kwargs,
    ):
        kwargs.pop("fused", None)  # Keras 2: kernel choice, meaningless here
        for legacy in ("virtual_batch_size", "adjustment"):
            if kwargs.pop(legacy, None) is not None:
                raise NotImplementedError(f"`BatchNormalization`: `{legacy}` (Keras 2) is not supported.")
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError(f"`BatchNormalization` normalizes a single axis (Keras 3). Received: axis={axis}")
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"`BatchNormalization`: expected an integer `axis`. Received: axis={axis!r}")
        self.axis = int(axis)
        self.momentum = check_number(momentum, "momentum", "BatchNormalization", 0.0, 1.0)
        self.epsilon = check_number(epsilon, "epsilon", "BatchNormalization", 0.0)
        if self.epsilon <= 0:
            raise ValueError(f"`BatchNormalization`: `epsilon` must be positive. Received: epsilon={epsilon}")
        self.center = center
        self.scale = scale
        self.synchronized = synchronized
        self._set_gamma_beta_args(
            beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint
        )
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.supports_masking = True
        if renorm:
            renorm_clipping = renorm_clipping or {}
            keys = ["rmax", "rmin", "dmax"]
            if set(renorm_clipping) - set(keys):
                raise ValueError(
                    f"Received invalid keys for `renorm_clipping` argument: {renorm_clipping}. "
                    f"Supported values: {keys}."
                )
            rmax, rmin, dmax = (renorm_clipping.get(k) for k in ("rmax", "rmin", "dmax"))
            if rmax is not None and rmin is not None and rmax < rmin:
                raise ValueError(
                    "rmax should be greater than rmin in the `renorm_clipping` argument. "
                    f"Received: rmax={rmax}, rmin={rmin}."
                )
            if dmax is not None and dmax < 0:
                raise ValueError(
                    f"dmax should be non-negative in the `renorm_clipping` argument. Received: dmax={dmax}."
                )
        self.renorm = renorm
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.gamma = None
        self.beta = None
        self.moving_mean = None
        self.moving_variance = None
        self._rank_free = False

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return tuple(n for n, on in (("gamma", self.scale), ("beta", self.center)) if on)

    def build(self, input_shape):
        axis = canonical_axes("BatchNormalization", self.axis, input_shape)[0]
        rank = len(input_shape)
        dim = input_shape[axis]
        if dim is None or dim == 0:
            raise ValueError(
                f"`BatchNormalization`: axis {self.axis} of the input must have a known, non-zero size. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        shape = (dim,)
        self._add_gamma_beta(shape, self.scale, self.center)
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean", initializer=self.moving_mean_initializer, trainable=False, autocast=False
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        if self.renorm:
            stddev_init = _sqrt_initializer(self.moving_variance_initializer)
            for name, init in (
                ("moving_stddev", stddev_init),
                ("renorm_mean", self.moving_mean_initializer),
                ("renorm_stddev", stddev_init),
            ):
                setattr(
                    self,
                    name,
                    self.add_weight(shape=shape, name=name, initializer=init, trainable=False, autocast=False),
                )
        if self._rank_free:  # built from a state_dict: rank unknown
            self.input_spec = InputSpec(
                min_ndim=max(2, -self.axis if self.axis < 0 else self.axis + 1), axes={self.axis: dim}
            )
        else:
            self.input_spec = InputSpec(ndim=rank, axes={self.axis: dim})
        # constant per-call facts: channels-last data is viewed as (N, C)
        # (a free view, and the layout torch's channels-last kernels want)
        self._channels_last = self.axis == -1 or axis == rank - 1
        self._caxis = -1 if self._channels_last else axis
        self._reduce_dims = tuple(i for i in range(rank) if i != axis)

    def _infer_build_shape(self, weight_shapes):
        shape = weight_shapes.get("moving_mean") or weight_shapes.get("gamma") or weight_shapes.get("beta")
        if shape is None or self.axis not in (-1, 1):
            return None
        self._rank_free = self.axis == -1
        return (None, shape[0]) if self.axis == -1 else (None, shape[0], None)

    def _hot_mask_mode(self):
        # an unmasked call takes the hot path; a mask (the input's or `mask=`) the full one
        cls = type(self)
        if cls._has_compute_mask or not cls._call_has_mask:
            return super()._hot_mask_mode()
        return 2

    # ------------------------------------------------------------------ call
    def call(self, inputs, training=None, mask=None):
        if mask is not None and mask.ndim != inputs.ndim - 1:
            raise ValueError(
                "The mask provided should be one dimension less than the inputs. "
                f"Received: mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}"
            )
        # the weights read from the registries, half-precision tensors in float32 (`as_float32`;
        # the statistics overflow in 16 bits), written out: inference is the hot path of a ResNet
        # (53 of these per call), and in a compiled call every helper function, global name or
        # `nn.Module.__getattr__` read is a guard checked per call
        d = self.__dict__
        params = d["_parameters"]
        gamma = params["gamma"] if "gamma" in params else self.gamma  # (scale=False: None)
        beta = params["beta"] if "beta" in params else self.beta
        if gamma is not None and gamma.dtype.itemsize == 2:
            gamma = gamma.float()
        if beta is not None and beta.dtype.itemsize == 2:
            beta = beta.float()
        out_dtype = inputs.dtype
        x = inputs.float() if out_dtype.itemsize == 2 and inputs.is_floating_point() else inputs
        if not (training and d["_trainable"]):
            buffers = d["_buffers"]
            mean = buffers["moving_mean"] if "moving_mean" in buffers else self.moving_mean
            var = buffers["moving_variance"] if "moving_variance" in buffers else self.moving_variance
            if mean.dtype.itemsize == 2:
                mean, var = mean.float(), var.float()
            eps = self.epsilon
            if d["_channels_last"]:
                if x.dim() == 4:
                    # NHWC data as an NCHW channels_last view: torch's channels-last
                    # batch-norm kernel, the one nn.BatchNorm2d uses, no copy
                    y = F.batch_norm(x.permute(0, 3, 1, 2), mean, var, gamma, beta, False, 0.0, eps).permute(0, 2, 3, 1)
                else:
                    y = F.batch_norm(x.reshape(-1, x.shape[-1]), mean, var, gamma, beta, False, 0.0, eps).view(x.shape)
            else:
                y = self._from_channel_dim1(F.batch_norm(self._to_channel_dim1(x)[0], mean, var, gamma, beta, False,
                                                         0.0, eps), None)
            return y if y.dtype is out_dtype else y.to(out_dtype)
        if mask is None and not self.renorm and not self.synchronized and not distribution_lib.sync_batch_stats():
            out = self._fused_training(x, gamma, beta)
        else:
            out = self._explicit_training(x, gamma, beta, mask)
        return out if out.dtype is out_dtype else out.to(out_dtype)

    def _to_channel_dim1(self, x):
        """(view, restore) with the channels at dim 1, as torch's kernels want."""
        if self._channels_last:
            return x.reshape(-1, x.shape[-1]), x.shape
        if self._caxis == 1:
            return x, None
        return x.movedim(self._caxis, 1), None

    def _from_channel_dim1(self, y, shape):
        if self._channels_last:
            return y.view(shape)
        if self._caxis == 1:
            return y
        return y.movedim(1, self._caxis)

    def _fused_training(self, x, gamma, beta):
        # One fused kernel normalizes with the batch moments and hands them back
        # (mean and 1/sqrt(var + eps)); its backward is torch's fused one too.
        xt, shape = self._to_channel_dim1(x)
        y, mean, invstd = torch.native_batch_norm(xt, gamma, beta, None, None, True, 0.0, self.epsilon)
        var = invstd.detach().pow(-2)
        # (`is_compiling` first: a compiled call reads no method it does not need, each one a guard)
        consts = None if torch.compiler.is_compiling() else self._update_constants(invstd)
        # (a fresh tensor: in place; `relu_` is torch's `clamp_min_(0)` with the 0 not wrapped in Python)
        var.sub_(self.epsilon if consts is None else consts[2]).relu_()
        self._update_moving(mean.detach(), var, consts)
        return self._from_channel_dim1(y, shape)

    def _update_constants(self, like):
        """`(momentum, 1 - momentum, epsilon)` as 0-d tensors of `like`'s dtype
        and device, kept on the layer while they stay the same (eager,
        float32/float64 plain tensors). An op with a Python number wraps it in
        a new tensor on every call (about half of a small training call's
        update work); a 0-d operand of the same dtype is the same number to
        the kernel, so the results are the same bit for bit. None (use the
        numbers) for tensor subclasses (fake, distributed), half precision (the kernel
        would see the number rounded to 16 bits first) and the cumulative
        average (`torch_momentum = None`: a new momentum every batch). Eager
        only: the caller passes None under `torch.compile` (numbers are
        constants there, tensors on the layer would be guarded attributes)."""
        if type(like) is not torch.Tensor or like.dtype not in (torch.float32, torch.float64):
            return None
        d = self.__dict__
        if d.get("_cumulative_batches") is not None:
            return None
        m, eps = self.momentum, self.epsilon
        cached = d.get("_update_constants_cache")
        if (cached is not None and cached[0] == m and cached[1] == eps and cached[2] is like.dtype
                and cached[3] == like.device):
            return cached[4]
        if torch.jit.is_tracing():
            # (made inside a trace, the tensors' creation is recorded in the first graph only:
            # `jit.trace`'s check, which traces again, found the graphs differed)
            return None
        with torch.inference_mode(False):  # (made inside inference mode, they would be inference tensors)
            consts = tuple(torch.tensor(v, dtype=like.dtype, device=like.device) for v in (m, 1.0 - m, eps))
        d["_update_constants_cache"] = (m, eps, like.dtype, like.device, consts)
        return consts

    # ------------------------------------------- torch's _BatchNorm protocol
    def reset_running_stats(self) -> None:
        """As torch's BatchNorm: `moving_mean` to 0, `moving_variance` to 1."""
        swa_update_bn.reset_running_stats(self)

    @property
    def torch_momentum(self):
        """The momentum in torch's convention (`1 - momentum`), or None while
        the layer averages cumulatively (torch's `momentum=None`: the k-th
        batch since `reset_running_stats()` enters with weight 1/k). Setting a
        number sets `momentum = 1 - value`; setting None starts the cumulative
        average; setting back the value read before restores `momentum`."""
        if self.__dict__.get("_cumulative_batches") is not None:
            return None
        return 1.0 - self.momentum

    @torch_momentum.setter
    def torch_momentum(self, value) -> None:
        if value is None:
            if self.__dict__.get("_cumulative_batches") is None:
                self._keras_momentum_before_cumulative = self.momentum
            self._cumulative_batches = 0
            return
        saved = self.__dict__.pop("_keras_momentum_before_cumulative", None)
        self._cumulative_batches = None
        self.momentum = saved if saved is not None and value == 1.0 - saved else 1.0 - float(value)

    def named_children(self):
        """torch's walk; when `SyncBatchNorm.convert_sync_batchnorm` walks here the layer becomes
        `synchronized` (see `sync_convert.py`)."""
        if not torch.compiler.is_compiling():  # dynamo cannot trace a frame read; the conversion runs eagerly
            sync_convert.on_named_children(self, sys._getframe(1))
        return super().named_children()

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """torch's walk; inside `torch.optim.swa_utils.update_bn` it lists a `_BatchNorm` view of this layer
        instead (see `swa_update_bn.py`)."""
        if torch.compiler.is_compiling() or not swa_update_bn.called_from_update_bn():
            return super().named_modules(memo, prefix, remove_duplicate)
        return self._update_bn_walk(memo, prefix, remove_duplicate)

    def _update_bn_walk(self, memo, prefix, remove_duplicate):
        if memo is None:
            memo = set()
        if remove_duplicate and self in memo:
            return
        memo.add(self)
        yield prefix, swa_update_bn.BatchNormUpdateView(self)

    def _momentum_now(self) -> float:
        """`momentum`, or the cumulative average's `1 - 1/k` for the k-th batch (update_bn)."""
        n = self.__dict__.get("_cumulative_batches")
        if n is None:
            return self.momentum
        self._cumulative_batches = n + 1
        return 1.0 - 1.0 / (n + 1)

    def _update_moving(self, mean, var, consts=None):
        """Keras's rule, in place (buffers, detached operands: no autograd and
        no Python side effect, so it compiles). Not again when
        `torch.utils.checkpoint` recomputes the call in the backward pass:
        one update per training step, as Keras (torch's `_BatchNorm` updates
        twice there)."""
        if call_context.in_backward():
            return
        m = self._momentum_now()
        buffers = self.__dict__["_buffers"]  # (read as `call` reads them: no `nn.Module.__getattr__`)
        mm = buffers["moving_mean"] if "moving_mean" in buffers else self.moving_mean
        mv = buffers["moving_variance"] if "moving_variance" in buffers else self.moving_variance
        try:
            if mm.dtype is mean.dtype and mv.dtype is var.dtype:
                # `moving * m + batch * (1 - m)` in place: the same roundings as written out below, three
                # dispatched ops per statistic instead of four and a `float()` (a small BatchNormalization's
                # training call is mostly dispatch; `torch._foreach_*` measured no cheaper on the CPU);
                # `consts`: `m` and `1 - m` as 0-d tensors of this dtype (`_update_constants`)
                if consts is None or consts[0].dtype is not mm.dtype:
                    mm.mul_(m).add_(mean * (1.0 - m))
                    mv.mul_(m).add_(var * (1.0 - m))
                else:
                    mm.mul_(consts[0]).add_(mean * consts[1])
                    mv.mul_(consts[0]).add_(var * consts[1])
                return
            for moving, batch in ((mm, mean), (mv, var)):  # (half-precision statistics: computed in float32)
                moving.copy_(moving.float() * m + batch * (1.0 - m))
        except RuntimeError as e:
            if "vmap" not in str(e) and not torch._C._functorch.is_batchedtensor(mean):
                raise
            raise RuntimeError(
                f"BatchNormalization '{self.name}' cannot update its moving statistics inside "
                "`torch.func.vmap` in training mode: one pair of statistics cannot take a batch of updates "
                "(torch's BatchNorm raises too, and `torch.func.replace_all_batch_norm_modules_` only "
                "knows torch's BatchNorm classes). Run it in inference mode inside vmap (`model.eval()` or "
                "`training=False`), or give each vmapped model its own statistics "
                "(`torch.func.stack_module_state` with `functional_call` and the buffers passed in)."
            ) from e

    def _moments(self, x, mask):
        dims = self._reduce_dims
        if mask is None and x.numel() == 0:
            # a rank's empty share of a data-parallel batch: zero moments of zero rows (no NaN, no
            # warning), still on the autograd path, weighted 0 by the all-reduce below
            mean = x.sum(dim=dims)
            var, count = mean * 0.0, None
        elif mask is None and self.renorm:
            # Keras's `ops.moments`: E[x^2] - E[x]^2 (bit for bit with Keras's renorm; the
            # two-pass `var_mean` below was up to ~1000 ulp off near zero)
            mean = x.mean(dim=dims)
            var = x.square().mean(dim=dims) - mean.square()
            count = None
        elif mask is None:
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            count = None
        else:
            m = mask.unsqueeze(-1).to(torch.bool).expand(x.shape)
            w = m.to(x.dtype)
            count = w.sum(dim=dims) + KERAS_BACKEND_EPSILON
            mean = torch.where(m, x, 0.0).sum(dim=dims) / count
            diff = torch.where(m, x - self._bcast(mean, x), 0.0)
            var = diff.square().sum(dim=dims) / count
        if ((self.synchronized or distribution_lib.sync_batch_stats()) and torch.distributed.is_available()
                and torch.distributed.is_initialized()):
            mean, var = _all_reduce_moments(x, mean, var, count, dims, distribution_lib.batch_stats_group())
        return mean, var

    def _bcast(self, v, x):
        if self._channels_last:
            return v
        shape = [1] * x.ndim
        shape[self._caxis] = -1
        return v.view(shape)

    def _explicit_training(self, x, gamma, beta, mask):
        mean, var = self._moments(x, mask)
        if self.renorm:
            gamma, beta = self._renorm(mean, var, gamma, beta, x.dtype)
        else:
            self._update_moving(mean.detach(), var.detach())
        inv = torch.rsqrt(var + self.epsilon)
        if gamma is not None:
            inv = inv * gamma
        if mask is not None or self.renorm:
            # Keras's `ops.batch_normalization` order, `(x - mean) * inv + beta` (bit for bit with
            # Keras; the fused `addcmul` below, kept for synchronized moments, is an ulp off)
            y = (x - self._bcast(mean, x)) * self._bcast(inv, x)
            return y if beta is None else y + self._bcast(beta, x)
        shift = -mean * inv
        if beta is not None:
            shift = shift + beta
        return torch.addcmul(self._bcast(shift, x), x, self._bcast(inv, x))

    def _renorm(self, mean, var, gamma, beta, dtype):
        """Batch Renormalization (Keras's rule): returns the corrected
        (gamma, beta) and updates the renorm and moving statistics."""
        eps = self.epsilon
        stddev = torch.sqrt(var + eps)
        renorm_mean = self.renorm_mean.float()
        renorm_stddev = torch.clamp_min(self.renorm_stddev.float(), math.sqrt(eps))
        r = (stddev / renorm_stddev).detach()
        d = ((mean - renorm_mean) / renorm_stddev).detach()
        clip = self.renorm_clipping
        if clip.get("rmin") is not None:
            r = torch.clamp_min(r, clip["rmin"])
        if clip.get("rmax") is not None:
            r = torch.clamp_max(r, clip["rmax"])
        if clip.get("dmax") is not None:
            d = torch.clamp(d, -clip["dmax"], clip["dmax"])
        new_gamma = r if gamma is None else r * gamma
        new_beta = d if gamma is None else d * gamma
        if beta is not None:
            new_beta = new_beta + beta
        mean_d, stddev_d = mean.detach(), stddev.detach()
        if call_context.in_backward():  # a checkpoint's recomputation: updated once already
            return new_gamma.to(dtype), new_beta.to(dtype)
        rm, m = self.renorm_momentum, self._momentum_now()
        self.renorm_mean.copy_(self.renorm_mean.float() * rm + mean_d * (1.0 - rm))
        self.renorm_stddev.copy_(self.renorm_stddev.float() * rm + stddev_d * (1.0 - rm))
        self.moving_mean.copy_(self.moving_mean.float() * m + mean_d * (1.0 - m))
        new_stddev = self.moving_stddev.float() * m + stddev_d * (1.0 - m)
        self.moving_stddev.copy_(new_stddev)
        self.moving_variance.copy_(torch.relu(new_stddev * new_stddev - eps))
        return new_gamma.to(dtype), new_beta.to(dtype)

    def compute_output_shape(self, input_shape):
        canonical_axes("BatchNormalization", self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            }
        )
        gb = self._gamma_beta_config()
        for key in ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"):
            config[key] = gb[key]
        config.update(
            {
                "synchronized": self.synchronized,
                "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum,
            }
        )
        return config


class _SumOverProcesses(torch.autograd.Function):
    """Sum of a tensor over the processes of `group` (None: the default
    group); the gradient of every process's input is the sum of the output
    gradients (each process uses the sum). torch's own
    `torch.distributed.nn.functional.all_reduce` is deprecated and warns on
    every call."""

    @staticmethod
    def forward(ctx, tensor, group=None):
        import torch.distributed as dist

        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return _SumOverProcesses.apply(grad, ctx.group), None


def _all_reduce_moments(x, mean, var, count, dims, group=None):
    """Global moments over every process of `group` (None: the default
    group; SyncBatchNorm semantics), differentiable (the backward sums the
    gradients over those processes). Under `ModelParallel` the group is the
    batch axis's: processes along a model axis hold the same rows."""
    import torch.distributed as dist

    if dist.get_world_size(group) == 1:
        return mean, var
    from kerasish.distribution import distribution_lib

    distribution_lib.mark_batch_stats_synced()
    n = count if count is not None else torch.full_like(mean, x.numel() / mean.numel())
    if x.numel() == 0:
        # an empty share of the batch (the last, small batch of a data-parallel
        # fit) takes part in the collective with zero weight instead of NaNs
        # (nan_to_num keeps the autograd path: the backward all-reduce must run on every rank)
        mean, var = torch.nan_to_num(mean), torch.nan_to_num(var)
    stats = torch.stack([mean * n, (var + mean.square()) * n, n])
    stats = _SumOverProcesses.apply(stats, group)
    total = stats[2]
    g_mean = stats[0] / total
    g_var = stats[1] / total - g_mean.square()
    return g_mean, g_var
