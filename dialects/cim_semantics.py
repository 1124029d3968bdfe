"""Semantics of the `cim` dialect: a functional model of a linear layer on resistive crossbars.

`crossbar_mvm` executes the integer product the way the hardware does (see
`pimc.targets.cim.tiling`): signed weight codes split into (G+, G-) cell pairs and `cell_bits`
slices; signed input codes streamed in two's complement `dac_bits` at a time (the sign bit last,
weighted negatively); per DAC step, per weight slice and per K slice the column currents are
integer dot products; each goes through the ADC (ideal: exact; saturate: quantized to `adc_bits`
over its full-scale range and clipped), optionally with seeded Gaussian read noise, and digital
shift-add combines the results. With an ideal ADC and no noise the result equals the integer
product exactly. `cim_linear` wraps it with the codes and scales of `quantize_matrix`, so a
lowered linear computes what the `llm` reference computes, up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pimc.dialects import cim, llm
from pimc.dialects.llm_semantics import QuantizedMatrix, RuntimeState, get_state, quantize_matrix


@dataclass(frozen=True)
class CrossbarConfig:
    """What the functional model needs of a crossbar layout and its converters."""

    slice_k: int
    weight_slices: int
    cell_bits: int
    act_bits: int
    dac_bits: int
    adc_bits: int
    analog_subtract: bool = True
    adc_mode: str = "ideal"
    """"ideal" (exact) or "saturate" (adc_bits levels over the full-scale range, clipped)."""
    adc_full_scale: float = 1.0
    """Full-scale range as a fraction of the largest possible column value."""
    noise_sigma: float = 0.0
    """Standard deviation of Gaussian read noise per column sample, in cell LSB units."""

    @property
    def max_column_value(self) -> int:
        return self.slice_k * (2**self.dac_bits - 1) * (2**self.cell_bits - 1)

    def step_chunks(self) -> list[tuple[int, int, int]]:
        """(shift, width, sign) per DAC step, least significant first; the sign bit is its own step."""
        chunks, shift = [], 0
        while shift < self.act_bits - 1:
            width = min(self.dac_bits, self.act_bits - 1 - shift)
            chunks.append((shift, width, 1))
            shift += width
        return chunks + [(self.act_bits - 1, 1, -1)]

    # ------------------------------------------------------------------ ADC

    def adc_lsb(self) -> float:
        """Value of one ADC code: the full-scale span over the code count, never finer than 1."""
        span = self.adc_full_scale * self.max_column_value * (2 if self.analog_subtract else 1)
        return max(1.0, span / 2**self.adc_bits)

    def adc_code_range(self) -> tuple[int, int]:
        if self.analog_subtract:
            return -(2 ** (self.adc_bits - 1)), 2 ** (self.adc_bits - 1) - 1
        return 0, 2**self.adc_bits - 1

    def adc(self, values: np.ndarray) -> np.ndarray:
        """Digitise column values (integers, or floats with noise)."""
        if self.adc_mode == "ideal":
            return np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values
        lsb = self.adc_lsb()
        lo, hi = self.adc_code_range()
        return np.clip(np.rint(values / lsb), lo, hi) * lsb

    def conversion_error_bound(self) -> float:
        """Largest |ADC output - column value| of one noiseless conversion."""
        if self.adc_mode == "ideal":
            return 0.0
        lsb = self.adc_lsb()
        lo, hi = self.adc_code_range()
        vmax = self.max_column_value
        rounding = lsb / 2 if lsb > 1 else 0.0
        clip = max(vmax - hi * lsb, (vmax + lo * lsb) if self.analog_subtract else 0.0, 0.0)
        return max(rounding, clip)

    def error_bound(self, k_slices: int) -> float:
        """Analytical bound on |integer result - exact product| per output (noiseless)."""
        steps = sum(2**shift for shift, _, _ in self.step_chunks())
        slices = sum(2 ** (s * self.cell_bits) for s in range(self.weight_slices))
        per_pair = 1 if self.analog_subtract else 2
        return self.conversion_error_bound() * steps * slices * per_pair * k_slices


@dataclass
class AdcStats:
    """What a run's ADCs did: conversions, and the largest and summed |error| they introduced."""

    conversions: int = 0
    max_abs_error: float = 0.0
    sum_abs_error: float = 0.0

    def add(self, digitised: np.ndarray, exact: np.ndarray) -> None:
        err = np.abs(digitised - exact)
        self.conversions += err.size
        if err.size:
            self.max_abs_error = max(self.max_abs_error, float(err.max()))
            self.sum_abs_error += float(err.sum())


def crossbar_mvm(
    x_codes: np.ndarray,
    w_codes: np.ndarray,
    cfg: CrossbarConfig,
    rng: np.random.Generator | None = None,
    stats: AdcStats | None = None,
) -> np.ndarray:
    """Partial sums [R, k_slices, N] of x_codes [R, K] · w_codes [N, K]ᵀ over each K slice, as the
    crossbars compute them (int64 when exact, else float64)."""
    x = np.asarray(x_codes, dtype=np.int64)
    w = np.asarray(w_codes, dtype=np.int64)
    rows, k = x.shape
    n = w.shape[0]
    lo, hi = -(2 ** (cfg.act_bits - 1)), 2 ** (cfg.act_bits - 1) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"input codes outside the {cfg.act_bits}-bit range [{lo}, {hi}]")
    cell_max = 2**cfg.cell_bits - 1
    if w.size and np.abs(w).max() >= 2 ** (cfg.cell_bits * cfg.weight_slices):
        raise ValueError(f"weight codes exceed {cfg.weight_slices} slices of {cfg.cell_bits}-bit cells")
    k_slices = -(-k // cfg.slice_k)
    pad = k_slices * cfg.slice_k - k
    x = np.pad(x, ((0, 0), (0, pad))).reshape(rows, k_slices, cfg.slice_k)
    w = np.pad(w, ((0, 0), (0, pad))).reshape(n, k_slices, cfg.slice_k)
    unsigned = np.where(x < 0, x + 2**cfg.act_bits, x)  # two's complement bit pattern
    pos, neg = np.maximum(w, 0), np.maximum(-w, 0)  # the (G+, G-) cells of each weight
    noisy = cfg.noise_sigma > 0 and rng is not None
    exact = cfg.adc_mode == "ideal" and not noisy
    out = np.zeros((rows, k_slices, n), dtype=np.int64 if exact else np.float64)
    for shift, width, sign in cfg.step_chunks():
        level = (unsigned >> shift) & (2**width - 1)  # DAC levels driven on the word lines
        for s in range(cfg.weight_slices):
            g_pos = (pos >> (s * cfg.cell_bits)) & cell_max
            g_neg = (neg >> (s * cfg.cell_bits)) & cell_max
            i_pos = np.einsum("rjk,njk->rjn", level, g_pos)  # column currents, in cell LSB units
            i_neg = np.einsum("rjk,njk->rjn", level, g_neg)
            columns = [i_pos - i_neg] if cfg.analog_subtract else [i_pos, i_neg]
            digitised = []
            for current in columns:
                sensed = current + rng.normal(0.0, cfg.noise_sigma, current.shape) if noisy else current
                d = cfg.adc(sensed)
                if stats is not None:
                    stats.add(d, current)
                digitised.append(d)
            value = digitised[0] if cfg.analog_subtract else digitised[0] - digitised[1]
            out += (sign * 2**shift * 2 ** (s * cfg.cell_bits)) * value  # digital shift-add
    return out


def cim_linear(
    x: np.ndarray,
    weight: np.ndarray | QuantizedMatrix,
    bias: np.ndarray | None,
    wquant: llm.QuantAttr,
    aquant: llm.QuantAttr,
    cfg: CrossbarConfig,
    rng: np.random.Generator | None = None,
    stats: AdcStats | None = None,
) -> np.ndarray:
    """x [..., K] @ weight [N, K]ᵀ (+ bias) with weights and inputs quantized as the attributes say,
    the integer products computed on crossbars, scales applied digitally per K slice (float32).
    `weight` may be the codes already programmed into the crossbars."""
    wq = weight if isinstance(weight, QuantizedMatrix) else quantize_matrix(weight, wquant)
    n, k = wq.shape
    x2 = x.reshape(-1, k)
    xq = quantize_matrix(x2, aquant)
    partial = crossbar_mvm(xq.signed_codes(), wq.signed_codes(), cfg, rng, stats)  # [R, J, N]
    k_slices = partial.shape[1]
    wscale = wq.scale.reshape(wq.scale.shape[0], -1)  # [N or 1, G]
    group = k if wquant.scale.data != "per_group" else wquant.group.data
    slice_group = [min(j * cfg.slice_k // group, wscale.shape[1] - 1) for j in range(k_slices)]
    scaled = np.einsum("rjn,nj->rn", partial.astype(np.float64), np.broadcast_to(
        wscale[:, slice_group].astype(np.float64), (n, k_slices)))
    xscale = xq.scale.reshape(-1, 1).astype(np.float64)  # [R or 1, 1]
    y = scaled * xscale
    if bias is not None:
        y = y + bias
    return y.astype(np.float32).reshape(*x.shape[:-1], n)


# --------------------------------------------------------------------------- interpreter


@dataclass
class CrossbarState:
    """The crossbars of one run: the weight codes programmed into them (once each), the ADC
    statistics and the noise generator. A new run (a new `RuntimeState`) starts from blank arrays."""

    run: RuntimeState | None = None
    programmed: dict[str, QuantizedMatrix] | None = None
    program_events: int = 0
    executions: int = 0
    adc: AdcStats | None = None
    rng: np.random.Generator | None = None

    def begin(self, run: RuntimeState, seed: int) -> None:
        self.run, self.programmed, self.program_events, self.executions = run, {}, 0, 0
        self.adc, self.rng = AdcStats(), np.random.default_rng(seed)


def crossbar_state(interpreter: Interpreter) -> CrossbarState:
    return interpreter.get_data(CimFunctions, "crossbars", CrossbarState)


def op_config(op: cim.LinearOp) -> CrossbarConfig:
    value = lambda attr: attr.value.data  # noqa: E731
    return CrossbarConfig(
        slice_k=value(op.slice_k),
        weight_slices=value(op.weight_slices),
        cell_bits=value(op.cell_bits),
        act_bits=int(op.aquant.code_bits),
        dac_bits=value(op.dac_bits),
        adc_bits=value(op.adc_bits),
        analog_subtract=bool(value(op.analog_subtract)),
        adc_mode=op.adc_mode.data,
        adc_full_scale=value(op.adc_full_scale),
        noise_sigma=value(op.noise_sigma),
    )


@register_impls
class CimFunctions(InterpreterFunctions):
    @staticmethod
    def run_stats(interpreter: Interpreter) -> dict:
        """For the run report: weights programmed, crossbar calls, and what the ADCs did."""
        xbars = crossbar_state(interpreter)
        if xbars.run is None:
            return {}
        adc = xbars.adc
        return {
            "cim": {
                "programmed_weights": xbars.program_events,
                "executions": xbars.executions,
                "adc_conversions": adc.conversions,
                "adc_max_abs_error": adc.max_abs_error,
                "adc_mean_abs_error": adc.sum_abs_error / adc.conversions if adc.conversions else 0.0,
            }
        }

    @impl(cim.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: cim.LinearOp, args: tuple) -> tuple:
        x, w, *bias = args
        xbars = crossbar_state(interpreter)
        run = get_state(interpreter)
        if xbars.run is not run:
            xbars.begin(run, op.noise_seed.value.data)
        owner = op.weight.owner
        key = owner.properties["name"].data if isinstance(owner, llm.WeightOp) else f"crossbar{op.first_crossbar.value.data}"
        if key not in xbars.programmed:  # programmed once, at first use; every later call reuses the cells
            xbars.programmed[key] = quantize_matrix(w, op.wquant)
            xbars.program_events += 1
        xbars.executions += 1
        cfg = op_config(op)
        y = cim_linear(x, xbars.programmed[key], bias[0] if bias else None, op.wquant, op.aquant, cfg, xbars.rng, xbars.adc)
        return (y,)
