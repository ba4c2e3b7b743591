"""Neuron dynamics of the event simulator, over a chunk of time steps at once.

Two arithmetic models, both first-class:

* ``FloatNeurons`` - float32, the IR's equations (ir/neurons.py) literally;
* ``FixedNeurons`` - integers with Loihi / Lava ``fixed_pt`` semantics
  (../shared/reference/LAVA_FIXED_POINT.md): ``u = trunc0(u*(4095-du)) + (a << 6)`` wrapped to
  24 bits, ``v = clip(trunc0(v*(4096-dv)) + u + bias, +-(2**23-1))``, strict ``v > vth << 6``,
  reset of v only (to zero, or by subtracting ``vth << 6`` for subtractive-reset populations).

Each ``run(current, spikes)`` consumes the input currents of Tc steps, shaped (Tc, B, n), and
writes the spikes into a preallocated bool array of the same shape. The per-step loop is plain
numpy on (B, n) arrays: elementwise work only, the synaptic products are done before, for the
whole chunk.
"""
from __future__ import annotations

import numpy as np

from snc.ir import Node
from snc.ir.fixed_point import V_MAX, wrap_u

from . import fused
from .counting import row_counts

FUSED = {"on": True}  # tests switch the compiled step off to compare it with the numpy form


def _flat(value, n: int, dtype) -> np.ndarray | float:
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return arr.item() if dtype is np.float32 else arr
    return np.ascontiguousarray(arr.reshape(-1) if arr.size == n else np.broadcast_to(arr, arr.shape).reshape(-1), dtype=dtype)


class FloatNeurons:
    """IF / LIF population state in float32 for a batch of B samples."""

    def __init__(self, node: Node, shape: tuple[int, ...], batch: int) -> None:
        n = int(np.prod(shape))
        self.n = n
        self.kind = node.kind
        self.reset = node.reset
        th = np.broadcast_to(np.asarray(node.threshold, dtype=np.float32), shape).reshape(-1)
        self.th = float(th[0]) if np.all(th == th[0]) else np.ascontiguousarray(th)
        self.bias = None if node.bias is None else node.bias.reshape(-1).astype(np.float32)
        self.keep = None if getattr(node, "keep", None) is None else node.keep.reshape(-1)
        self.refractory = int(node.refractory)
        self.leaky = node.kind == "LIF" and (node.decay_current != 1.0 or node.decay_voltage != 0.0)
        if node.kind == "LIF":
            self.keep_u = np.float32(1.0 - node.decay_current)
            self.keep_v = np.float32(1.0 - node.decay_voltage)
        self.v = np.zeros((batch, n), dtype=np.float32)
        self.u = np.zeros((batch, n), dtype=np.float32)
        self.ref = np.zeros((batch, n), dtype=np.int32)
        self._tmp = np.empty((batch, n), dtype=np.float32)
        self.fused = FUSED["on"]  # the compiled one-pass step (fused.py) when numba is present

    def run(self, current: np.ndarray, spikes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """current: (Tc, B, n) float32 synaptic input of each step (modified in place);
        spikes: (Tc, B, n) bool, written. Returns the active updates per step and sample, (Tc, B):
        neurons whose input (synaptic current plus bias) was non-zero; ``mask``, if given, a
        (Tc, B, n) bool array, receives which ones."""
        tc, b, n = current.shape
        if self.refractory or self.leaky:
            current = current.astype(np.float32, copy=False)
            drive = current if self.bias is None else current + self.bias
            nz = np.not_equal(drive, 0, out=mask)
            if self.keep is not None:
                nz &= self.keep
            active = row_counts(nz.reshape(tc * b, n)).reshape(tc, b)
            self._run_general(current, spikes)
            if self.keep is not None:
                spikes &= self.keep  # removed neurons never spike
            return active
        if fused.AVAILABLE and self.fused:
            return fused.if_float(self.v, current, self.bias, self.th, self.keep, self.reset == "subtract", spikes, mask)
        if self.bias is not None:
            current = current.astype(np.float32, copy=False)
            current += self.bias  # for IF, u = I: the bias can join the input
        nz = np.not_equal(current, 0, out=mask)
        if self.keep is not None:
            nz &= self.keep
        active = row_counts(nz.reshape(tc * b, n)).reshape(tc, b)
        self._integrate(current, spikes)
        return active

    def run_constant(self, const: np.ndarray, spikes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``run`` with the same synaptic input every step: ``const`` (B, n) float32 (direct
        analog input only). The same arithmetic, without materialising (Tc, B, n) currents."""
        tc, b, n = spikes.shape
        if self.refractory or self.leaky:
            current = np.empty((tc, b, n), dtype=np.float32)
            current[...] = const
            return self.run(current, spikes, mask)
        if fused.AVAILABLE and self.fused:
            return self.run(np.broadcast_to(const, (tc, b, n)), spikes, mask)
        drive = const.astype(np.float32, copy=True)
        if self.bias is not None:
            drive += self.bias  # 0 + const + bias: what ``run`` computes from a zero dynamic input
        nz = np.not_equal(drive, 0)
        if self.keep is not None:
            nz &= self.keep
        if mask is not None:
            mask[...] = nz
        active = np.broadcast_to(row_counts(nz), (tc, b)).copy()
        self._integrate(np.broadcast_to(drive, (tc, b, n)), spikes)
        return active

    def _integrate(self, current: np.ndarray, spikes: np.ndarray) -> None:
        v, th, tmp = self.v, self.th, self._tmp
        subtract = self.reset == "subtract"
        for t in range(current.shape[0]):
            # Integer currents (exact int8-GEMM sums) are converted to float32 inside the add.
            np.add(v, current[t], out=v, dtype=np.float32, casting="unsafe")
            s = spikes[t]
            np.greater(v, th, out=s)
            if subtract:
                np.multiply(s, th, out=tmp)
                np.subtract(v, tmp, out=v)
            else:
                np.putmask(v, s, 0.0)
        if self.keep is not None:
            spikes &= self.keep  # removed neurons never spike

    def _run_general(self, current: np.ndarray, spikes: np.ndarray) -> None:
        v, u, th = self.v, self.u, self.th
        lif = self.kind == "LIF"
        bias = self.bias
        for t in range(current.shape[0]):
            if lif:
                u *= self.keep_u
                u += current[t]
                drive = u if bias is None else u + bias
                v *= self.keep_v
            else:
                drive = current[t] if bias is None else current[t] + bias
            if self.refractory:
                free = self.ref == 0
                v += np.where(free, drive, np.float32(0.0)).astype(np.float32)
                self.ref -= (~free).astype(np.int32)
            else:
                v += drive
            s = spikes[t]
            np.greater(v, th, out=s)
            if self.reset == "subtract":
                v -= s * np.float32(th) if np.isscalar(th) else s * th
            else:
                v[s] = 0.0
            if self.refractory:
                self.ref[s] = self.refractory


def trunc_decay(x: np.ndarray, keep: int) -> np.ndarray:
    """trunc0(x * keep / 4096): the product rounded toward zero (Lava's decay)."""
    prod = x.astype(np.int64) * keep
    return np.sign(prod) * (np.abs(prod) >> 12)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + 2**31) % 2**32) - 2**31


class FixedNeurons:
    """IF / LIF population state with Loihi fixed-point semantics, wrapped and saturated exactly as
    Lava's PyLifModelBitAcc does (including its int32 intermediate arithmetic).

    Reset to zero: Lava's LIF as it is -
        u = wrap24(trunc0(u (4095-du)/4096) + (a << 6));  v = clip(trunc0(v (4096-dv)/4096) + u + bias)
        s = v > vth << 6;  v[s] = 0.
    Reset by subtraction (converted ANNs) is not a Loihi neuron mode; snc builds it from Lava's
    LIF and one recurrent synapse, and defines the fixed-point model as exactly that circuit:
    the current register integrates (du = -1: no decay), the voltage only reads it (dv = 4096),
    the bias enters as input in units of ``a`` (so it must be a multiple of 64 in v units) and a
    self-connection of weight -vth delivers the threshold subtraction one step after a spike:
        u = wrap24(u + ((a + bias/64 - vth s[t-1]) << 6));  v = clip(u);  s = v > vth << 6.
    Its spikes equal 'v -= vth on spike' exactly while |u| < 2**23; beyond, u wraps as Lava's does.
    """

    def __init__(self, node: Node, shape: tuple[int, ...], batch: int) -> None:
        fx = node.fixed
        n = int(np.prod(shape))
        self.n = n
        self.reset = node.reset
        if int(getattr(node, "refractory", 0)):
            from snc.errors import UnsupportedOperator

            raise UnsupportedOperator("refractory periods have no Loihi fixed-point model", node=None)
        vth = np.asarray(fx.vth, dtype=np.int64)
        self.vth = vth.item() if vth.ndim == 0 else np.broadcast_to(vth, shape).reshape(-1).copy()
        self.vth6 = self.vth << 6 if vth.ndim == 0 else self.vth << 6
        self.du = int(fx.du)
        self.dv = int(fx.dv)
        mant = np.asarray(fx.bias_mant, dtype=np.int64)
        mant = np.broadcast_to(mant, shape).reshape(-1) if mant.size else np.zeros(n, np.int64)
        exp = int(fx.bias_exp)
        self.bias = (mant << exp) if exp >= 0 else (mant >> -exp)
        self.keep = None if getattr(node, "keep", None) is None else node.keep.reshape(-1)
        self.v = np.zeros((batch, n), dtype=np.int64)
        self.u = np.zeros((batch, n), dtype=np.int64)
        self.s_prev = np.zeros((batch, n), dtype=bool)
        self.u_wraps = 0  # neuron-steps where the 24-bit current wrapped
        self.v_saturations = 0  # neuron-steps where the voltage saturated
        self._extra = self._bias_total = None  # cached bias + direct input of the batch
        self._sub_bias = self._sub_cache = None  # cached subtractive-reset bias in units of a

    def run(self, current: np.ndarray, spikes: np.ndarray, extra_bias: np.ndarray | None = None) -> None:
        """current: (Tc, B, n) int64 ``a`` (summed, shifted synaptic input of each step);
        extra_bias: (B, n) int64 per-sample bias in v units (direct analog input, programmed as bias)."""
        if extra_bias is None:
            bias = self.bias
        else:
            # The direct input is the same in every chunk of a batch: add it to the bias once.
            if self._extra is not extra_bias:
                self._extra, self._bias_total = extra_bias, self.bias + extra_bias
            bias = self._bias_total
        self._dispatch(current, spikes, bias)
        if self.keep is not None:
            spikes &= self.keep  # removed neurons never spike
            if self.reset == "subtract":
                self.s_prev &= self.keep

    def _dispatch(self, current: np.ndarray, spikes: np.ndarray, bias: np.ndarray) -> None:
        if self.reset == "subtract":
            self._run_subtract(current, spikes, bias)
            return
        if self.du == 4095 and self.dv == 0:
            # u has no memory: u[t] = wrap24(int32(a << 6)), computed for the whole chunk at once.
            if current.size:
                peak = max(abs(int(current.max())), abs(int(current.min())))
                bias_peak = int(np.abs(bias).max(initial=0))
                if peak < 2**17 and bias_peak < 2**30:
                    # a << 6 stays inside the 24-bit range: nothing wraps, int32 throughout.
                    u = current.astype(np.int32, copy=False) << 6
                    self.u[...] = u[-1]
                    drive = u if not bias_peak else u + bias.astype(np.int32)
                    self._integrate_zero_reset(drive, spikes, (peak << 6) + bias_peak)
                    return
            x = wrap_int32(wrap_int32(current) << 6)
            u = wrap_u(x)
            self.u_wraps += int(np.count_nonzero(u != x))
            drive = u + bias
            if np.abs(drive).max(initial=0) < 2**31 - 2**23 - 1:
                self.u[...] = u[-1]
                self._integrate_zero_reset(drive.astype(np.int32), spikes)
                return
        self._run_exact(current, spikes, bias)

    def _integrate_zero_reset(self, drive: np.ndarray, spikes: np.ndarray, peak: int | None = None) -> None:
        # v + drive cannot leave int32 here (|v| <= 2**23 - 1, |drive| < 2**31 - 2**23 - 1).
        v = self.v.astype(np.int32)
        vth6 = np.int32(self.vth6) if np.isscalar(self.vth6) else self.vth6.astype(np.int32)
        # Saturation is possible in this chunk only if |v| could reach 2**23 - 1: only then is
        # there anything to clip (and to count).
        if peak is None:
            peak = int(np.abs(drive).max(initial=0))
        watch = int(np.abs(v).max(initial=0)) + int(peak) * drive.shape[0] >= V_MAX
        # Above the range a neuron whose threshold is inside it spikes and resets to 0 in the
        # same step, clipped or not: only the lower bound (and, for an integrator that never
        # fires, the upper one) changes anything, and only those saturations are counted.
        fires = int(np.max(vth6)) < V_MAX
        low = np.empty(v.shape, dtype=bool) if watch else None
        for t in range(drive.shape[0]):
            np.add(v, drive[t], out=v)
            if watch:
                np.less(v, -V_MAX, out=low)
                hits = int(np.count_nonzero(low))
                if hits:
                    self.v_saturations += hits
                    np.maximum(v, -V_MAX, out=v)
                if not fires:
                    high = v > V_MAX
                    self.v_saturations += int(np.count_nonzero(high))
                    np.minimum(v, V_MAX, out=v)
            s = spikes[t]
            np.greater(v, vth6, out=s)
            np.putmask(v, s, 0)
        self.v[...] = v

    def _run_subtract(self, current: np.ndarray, spikes: np.ndarray, bias: np.ndarray) -> None:
        if self._sub_bias is not bias:  # the same bias object for every chunk of a batch
            if np.any(bias % 64):
                from snc.errors import InvalidGraph

                raise InvalidGraph("a subtractive-reset population needs a bias that is a multiple of 64 (v units); quantize it")
            bias_a = bias >> 6
            small = np.abs(bias_a).max(initial=0) < 2**29
            self._sub_bias, self._sub_cache = bias, (bias_a, bias_a.astype(np.int32) if small else None)
        bias_a, bias_a32 = self._sub_cache
        if current.dtype == np.int32 and bias_a32 is not None:
            a = current + bias_a32  # all inputs of the step in units of a (bias included)
        else:
            a = current.astype(np.int64) + bias_a
        tc = a.shape[0]
        vth = self.vth
        vth6 = self.vth6
        # Fast path: while |u| provably stays below 2**23 nothing wraps or saturates, and the
        # circuit is plain integer accumulation with subtraction after each spike.
        peak = int(np.abs(a).max(initial=0))
        bound = int(np.abs(self.u).max(initial=0)) + tc * (peak * 64 + int(np.max(vth6)))
        if bound < V_MAX:
            u = self.u.astype(np.int32)
            a6 = (a << 6).astype(np.int32, copy=False)
            sub = np.where(self.s_prev, vth6, 0).astype(np.int32)
            for t in range(tc):
                np.subtract(u, sub, out=u)
                np.add(u, a6[t], out=u)
                s = spikes[t]
                np.greater(u, vth6, out=s)
                np.multiply(s, vth6, out=sub, casting="unsafe")
            self.u[...] = u
            self.v[...] = u
            self.s_prev[...] = spikes[-1]
            return
        u = self.u
        for t in range(tc):
            a_in = wrap_int32(wrap_int32(a[t]) - np.where(self.s_prev, vth, 0))
            x = wrap_int32(u + wrap_int32(a_in << 6))  # du = -1: the current does not decay
            wrapped = wrap_u(x)
            self.u_wraps += int(np.count_nonzero(wrapped != x))
            u[...] = wrapped
            v = np.clip(u, -V_MAX, V_MAX)  # dv = 4096: v forgets, then reads u (bias is in u)
            self.v_saturations += int(np.count_nonzero(v != u))
            s = spikes[t]
            np.greater(v, vth6, out=s)
            self.v[...] = np.where(s, 0, v)
            self.s_prev[...] = s

    def _run_exact(self, current: np.ndarray, spikes: np.ndarray, bias: np.ndarray) -> None:
        v, u = self.v, self.u
        keep_u = 4096 - (self.du + 1)
        keep_v = 4096 - self.dv
        for t in range(current.shape[0]):
            a6 = wrap_int32(wrap_int32(current[t]) << 6)
            x = wrap_int32(wrap_int32(trunc_decay(u, keep_u)) + a6)
            wrapped = wrap_u(x)
            self.u_wraps += int(np.count_nonzero(wrapped != x))
            u[...] = wrapped
            y = wrap_int32(wrap_int32(trunc_decay(v, keep_v)) + u + bias)
            clipped = np.clip(y, -V_MAX, V_MAX)
            self.v_saturations += int(np.count_nonzero(clipped != y))
            s = spikes[t]
            np.greater(clipped, self.vth6, out=s)
            v[...] = np.where(s, 0, clipped)


class ModelNeurons:
    """A population of a neuron model that declares its own dynamics (ir/models.py), in float or
    fixed point: the model's step, one time step at a time, on (B, n) arrays. The same
    interface as FloatNeurons / FixedNeurons (``run``; ``run_constant`` in float; the overflow
    counters in fixed point, which a declared model reports itself if it keeps them)."""

    def __init__(self, model, node: Node, shape: tuple[int, ...], batch: int, fixed: bool) -> None:
        self.model = model
        self.node = node
        self.n = int(np.prod(shape))
        self.fixed = fixed
        self.keep = None if getattr(node, "keep", None) is None else np.asarray(node.keep).reshape(-1)
        self.state = (model.fixed_state if fixed else model.float_state)(node, batch)
        self.u_wraps = 0
        self.v_saturations = 0
        if fixed:
            fx = node.fixed
            mant = np.asarray(fx.bias_mant, dtype=np.int64)
            mant = np.broadcast_to(mant, shape).reshape(-1) if mant.size else np.zeros(self.n, np.int64)
            exp = int(fx.bias_exp)
            self.bias = (mant << exp) if exp >= 0 else (mant >> -exp)

    def run(self, current: np.ndarray, spikes: np.ndarray, extra=None) -> np.ndarray | None:
        """Float: ``extra`` is the optional activity mask (as FloatNeurons.run); returns the
        active updates per step and sample. Fixed: ``extra`` is the per-sample bias in v units."""
        tc, b, n = current.shape
        if self.fixed:
            bias = np.broadcast_to(self.bias if extra is None else self.bias + extra, (b, n))
            for t in range(tc):
                spikes[t] = self.model.fixed_step(self.node, self.state, current[t].astype(np.int64), bias)
        else:
            active = np.empty((tc, b), dtype=np.int64)
            for t in range(tc):
                drive = current[t].astype(np.float32)
                bias = getattr(self.node, "bias", None)
                nz = (drive if bias is None else drive + bias.reshape(-1)) != 0  # as FloatNeurons: input + bias
                if self.keep is not None:
                    nz &= self.keep
                if extra is not None:
                    extra[t] = nz
                active[t] = row_counts(np.ascontiguousarray(nz))
                spikes[t] = self.model.float_step(self.node, self.state, drive)
        if self.keep is not None:
            spikes &= self.keep  # removed neurons never spike
        return None if self.fixed else active

    def run_constant(self, const: np.ndarray, spikes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        tc, b, n = spikes.shape
        return self.run(np.broadcast_to(const, (tc, b, n)), spikes, mask)


def _readout_as_integrator(node):
    """A Readout in fixed point is a LIF that never fires (threshold above the voltage range)."""
    from snc.ir import IF, LIF, NeuronFixed

    fx = node.fixed
    du, dv = (int(fx.du), int(fx.dv)) if node.leaky else (4095, 0)  # a perfect integrator: no decays
    never = NeuronFixed(vth=2**17, bias_mant=fx.bias_mant, bias_exp=fx.bias_exp, du=du, dv=dv, scale=fx.scale)
    return (LIF if node.leaky else IF)(shape=node.shape, threshold=1.0, reset="zero", fixed=never)


def _readout_as_lif(node):
    """A leaky (LI) readout in float: a LIF with the readout's decays and bias whose threshold
    is never crossed (float32's largest value)."""
    from snc.ir import LIF

    return LIF(shape=node.shape, threshold=float(np.finfo(np.float32).max), reset="zero", bias=node.bias,
               decay_current=float(node.decay_current), decay_voltage=float(node.decay_voltage))


def readout_neurons(node, shape: tuple[int, ...], batch: int, fixed: bool):
    """The neurons that carry a membrane Readout's potential: in fixed point an IF (or, leaky, a
    LIF) that never fires, with the readout's integer decays; in float, for a leaky readout, a
    LIF with its decays and bias (a perfect integrator in float needs none: it sums)."""
    if fixed:
        return FixedNeurons(_readout_as_integrator(node), shape, batch)
    return FloatNeurons(_readout_as_lif(node), shape, batch)
