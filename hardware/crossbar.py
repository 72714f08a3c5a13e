"""A memristive crossbar (analog in-memory computing) emulator: PCM-like devices, digital neurons.

The synapses of every projection live on crossbar tiles as conductances; each matrix-vector
product (one per time step and sample) is computed by Ohm's and Kirchhoff's laws on those
tiles, with the devices' non-idealities; the neurons (the periphery) stay the float
simulator's exact-propagator dynamics.  The profile's figures, with their sources, are in
:class:`CrossbarProfile`; what is an assumption says so there.

Mapping (weights -> conductances), per projection
--------------------------------------------------
A weight ``w`` of a projection whose largest magnitude is ``w_max`` becomes a differential
pair of devices ``(G+, G-)`` in adjacent bit lines::

    u  = w / w_max                         in [-1, 1]
    G+ = g_min + (g_max - g_min) * max(u, 0)
    G- = g_min + (g_max - g_min) * max(-u, 0)

so ``max |w|`` maps to ``g_max`` and the unused device of a pair sits at ``g_min`` (its
offset cancels in ``G+ - G-``).  Reading back, the periphery multiplies the digitised column
current by ``w_max / (g_max - g_min)`` (a digital gain), so the chip's weight is
``(G+ - G-) * w_max / (g_max - g_min)``.  Rows of a tile are the source neurons, columns the
target neurons (one pair of bit lines each); a projection ``[target, source]`` takes
``ceil(source / tile_rows) * ceil(target / tile_columns)`` tiles, tiles are not shared between
projections, and the partial sums of the row tiles are digitised separately and added in
digital.

Device pipeline (drawn once per programmed chip, seeded by ``chip_seed``)
--------------------------------------------------------------------------
1. target conductances, rounded to ``levels`` evenly spaced values in ``[g_min, g_max]``;
2. programming noise ``G += s * sigma(G) * z`` with the PCM polynomial ``sigma(G)`` of
   Nandakumar et al. 2019 (as in IBM aihwkit's ``PCMLikeNoiseModel``), clipped at 0 uS;
3. drift ``G(t) = G(t0) * (t / t0) ** -nu`` for ``t = t_inference > t0``, with ``nu`` per
   device (mean and spread either given or the conductance-dependent fit of Joshi et al. 2020);
4. stuck-at faults: a device stuck off reads ``g_min``, stuck on reads ``g_max``, whatever was
   programmed (faults belong to the physical chip and survive re-programming);
5. optional IR drop along the word lines (rows), solved exactly for a resistive ladder.

``z`` and ``nu`` are drawn again by :meth:`Crossbar.program` (re-programming the same chip).
A global drift compensation (a digital gain per projection, from a reference read with an
all-ones input right after programming and at ``t_inference``) is on by default.

Per read (every time step, every sample)
----------------------------------------
Inputs pass a signed DAC (``dac_bits`` over ``[-dac_range, dac_range]``; spikes 0/1 are exact).
Each device reads ``G (1 + read_noise * n)`` with a fresh standard normal ``n`` per device and
read; the column current's noise is drawn from its exact distribution (Gaussian with variance
``read_noise**2 * sum_i x_i**2 (G+_i**2 + G-_i**2)``), which is cheaper than drawing every
device.  The differential current ``I+ - I-`` of each column and row tile passes a signed ADC
(``adc_bits`` over ``[-adc_range, adc_range]`` in units of one full-scale device read with a
full-scale input), after an optional additive ``output_noise`` per column and read (present
at every step, input or not: a synchronous readout).  The noise generator is seeded
(``read_seed``) and advances with every read, so two runs of the same chip differ, and two
chips built with the same seeds agree.

Gradients
---------
The forward pass returns the chip's product; the backward pass is that of ``x @ W_chip.T``
where ``W_chip`` (what :meth:`Crossbar.weight` returns) passes its gradient straight through
to the stored float weights.  Hardware-aware training therefore works unchanged; with
``resample_in_training=True`` every training forward pass re-programs the chip (fresh
programming noise), which trains for robustness against it.

States are in the float simulator's units (the periphery is digital float); the synaptic
current ``i`` is the sum of the chip's products in weight units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.backends import projection_key
from workbench.energy import energy_table, priced
from workbench.hardware.base import (
    EmulatedNetwork,
    HardwareProfile,
    Violation,
    figure,
    resource_table,
    straight_through,
)
from workbench.nonlinearity import MirrorFigures
from workbench.spec import NetworkSpec, Projection

# Programming-noise polynomial of PCM devices (Nandakumar et al., ICECS 2019), in uS, as a
# function of G / g_max, fitted at g_max = 25 uS; IBM aihwkit's PCMLikeNoiseModel uses it.
PCM_PROGRAMMING_COEFFICIENTS = (0.26348, 1.9650, -1.1731)
PCM_REFERENCE_G_MAX = 25.0  # uS, the g_max at which the coefficients above were fitted

_SOURCE_HERMES = (
    "Le Gallo et al. 2023, Nature Electronics 6:680 (IBM HERMES: 64 cores of 256x256 PCM "
    "unit cells, each weight a differential pair)"
)
_SOURCE_PCM = "Nandakumar et al. 2019 (ICECS) / Joshi et al. 2020 (Nat. Commun. 11:2473)"


# The figures that switch every non-ideality of the devices and converters off (drift stays
# at t0 unless t_inference is set): a profile ``dict`` for studies that add one at a time.
IDEAL = dict(
    programming_noise_scale=0.0,
    read_noise=0.0,
    dac_bits=None,
    adc_bits=None,
    levels=None,
    stuck_on_rate=0.0,
    stuck_off_rate=0.0,
)


@dataclass(frozen=True)
class CrossbarProfile(HardwareProfile, MirrorFigures):
    """A PCM-like memristive crossbar chip.  Change a figure with ``dataclasses.replace``.
    The neurons are ideal by default; ``integration_nonlinearity`` > 0 makes them analog
    integrate-and-fire neurons charged through current mirrors (:mod:`workbench.nonlinearity`),
    as a column's current would be integrated on a mixed-signal crossbar."""

    name: str = "PCM crossbar (HERMES-like, 64 tiles of 256x256)"
    tile_rows: int = figure(256, "rows (inputs) per tile", _SOURCE_HERMES)
    tile_columns: int = figure(
        256, "columns (outputs, one device pair each) per tile", _SOURCE_HERMES
    )
    n_tiles: int = figure(64, "tiles", _SOURCE_HERMES)
    g_min: float = figure(
        0.0,
        "uS",
        "assumption: the reset (amorphous) PCM state read as 0 uS, as aihwkit's "
        "single-pair conductance converter maps a zero weight",
        assumption=True,
    )
    g_max: float = figure(25.0, "uS", f"{_SOURCE_PCM}; aihwkit PCMLikeNoiseModel g_max")
    levels: int | None = figure(
        None,
        "programmable conductance levels per device (None: analog)",
        "assumption: PCM is programmed iteratively to an analog target (Joshi et al. 2020), "
        "so precision is limited by programming noise; set e.g. 16 for 4-bit multi-level cells",
        assumption=True,
    )
    programming_noise_coefficients: tuple = figure(
        PCM_PROGRAMMING_COEFFICIENTS,
        "uS, polynomial in G/g_max (fitted at g_max = 25 uS, scaled by g_max/25)",
        f"{_SOURCE_PCM}; aihwkit PCMLikeNoiseModel.prog_coeff",
    )
    programming_noise_scale: float = figure(
        1.0, "x the PCM fit", "aihwkit PCMLikeNoiseModel prog_noise_scale (1 = as measured)"
    )
    read_noise: float = figure(
        0.02,
        "relative sigma of a device's conductance per read",
        "assumption: white noise per read of the order of PCM 1/f read noise (Joshi et al. "
        "2020 fit: relative sigma 0.0088 * sqrt(ln(t / 2 t_read)) at g_max, a few % over a "
        "second); the 1/f correlation in time is not modelled",
        assumption=True,
    )
    output_noise: float = figure(
        0.0,
        "sigma of additive noise per column read, in full-scale device reads",
        "assumption: off; aihwkit IOParameters.out_noise = 0.06 (same normalisation) for a "
        "tile's analog summation; applied to every column at every step (synchronous readout)",
        assumption=True,
    )
    stuck_on_rate: float = figure(
        0.0,
        "fraction of devices stuck at g_max",
        "assumption: a tested PCM chip; Chen et al. 2015 (IEEE Trans. Comput. 64:180) measured "
        "9.04 % stuck-at-low-resistance cells in a ReRAM chip, a range worth sweeping",
        assumption=True,
    )
    stuck_off_rate: float = figure(
        0.0,
        "fraction of devices stuck at g_min",
        "assumption: a tested PCM chip; Chen et al. 2015 measured 1.75 % stuck-at-high-"
        "resistance cells in a ReRAM chip",
        assumption=True,
    )
    drift_t0: float = figure(
        20.0, "s (first read after programming)", f"{_SOURCE_PCM}; aihwkit t_0"
    )
    drift_nu_mean: float | None = figure(
        None,
        "drift exponent nu (None: conductance-dependent PCM fit, 0.049-0.1)",
        "Joshi et al. 2020 fit as in aihwkit PCMLikeNoiseModel.generate_drift_coefficients",
    )
    drift_nu_std: float | None = figure(
        None,
        "device-to-device spread of nu (None: conductance-dependent PCM fit, 0.008-0.045)",
        "Joshi et al. 2020 fit as in aihwkit PCMLikeNoiseModel.generate_drift_coefficients",
    )
    dac_bits: int | None = figure(
        8,
        "bits of the signed input DAC (None: ideal)",
        "aihwkit IOParametersIRDropT: 8-bit PWM inputs with one sign bit (HERMES-style)",
    )
    dac_range: float = figure(
        1.0,
        "input units (spikes per step) at full scale",
        "assumption: one spike per step",
        assumption=True,
    )
    adc_bits: int | None = figure(
        8,
        "bits of the signed column ADC (None: ideal)",
        "assumption: 8 bits; aihwkit's default ADC resolution is 1/(2^9 - 2) of its range",
        assumption=True,
    )
    adc_range: float = figure(
        4.0,
        "full-scale device reads at full-scale input (ADC clips at +- this)",
        "assumption: set for sparse spike input (a few spikes per step and tile); aihwkit's "
        "IOParameters.out_bound (same normalisation) is 12 for dense DNN activations",
        assumption=True,
    )
    wire_resistance: float = figure(
        0.15,
        "ohm per cell along a row (used with ir_drop=True)",
        "aihwkit IOParametersIRDropT.ir_drop_rs = 0.15 ohm",
    )
    energy_per_mac: float = figure(
        0.18e-12,
        "J per multiply-accumulate in the array, converters included (2 operations)",
        "Yao et al. 2020, Nature 577:641 (fully hardware memristor CNN): 11,014 GOP/s/W at "
        "system level; a figure of an RRAM system applied to this PCM-like array per synaptic "
        "event",
        assumption=True,
    )
    energy_neuron_update: float = figure(
        0.92e-12,
        "J per digital neuron update at the array's edge (4 x 8-bit multiply-adds)",
        "Horowitz 2014, ISSCC, 45 nm: 8-bit multiply 0.2 pJ, 8-bit add 0.03 pJ; four of each "
        "per LIF step is an assumption",
        assumption=True,
    )

    def __post_init__(self) -> None:
        problems = []

        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                problems.append(f"{name} is {getattr(self, name)!r}; it must be {allowed}")

        for name in ("tile_rows", "tile_columns", "n_tiles"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, name, "an integer >= 1")
        need(self.g_min >= 0, "g_min", ">= 0 uS")
        need(self.g_max > self.g_min, "g_max", f"> g_min = {self.g_min} uS")
        need(
            self.levels is None or (isinstance(self.levels, int) and self.levels >= 2),
            "levels",
            "None (analog) or an integer >= 2",
        )
        need(self.programming_noise_scale >= 0, "programming_noise_scale", ">= 0")
        need(self.read_noise >= 0, "read_noise", ">= 0")
        need(self.output_noise >= 0, "output_noise", ">= 0")
        for name in ("stuck_on_rate", "stuck_off_rate"):
            need(0 <= getattr(self, name) <= 1, name, "in [0, 1]")
        need(
            self.stuck_on_rate + self.stuck_off_rate <= 1, "stuck_off_rate", "<= 1 - stuck_on_rate"
        )
        need(self.drift_t0 > 0, "drift_t0", "> 0 s")
        need(self.drift_nu_mean is None or self.drift_nu_mean >= 0, "drift_nu_mean", "None or >= 0")
        need(self.drift_nu_std is None or self.drift_nu_std >= 0, "drift_nu_std", "None or >= 0")
        for name in ("dac_bits", "adc_bits"):
            value = getattr(self, name)
            need(value is None or (isinstance(value, int) and value >= 2), name, "None or >= 2")
        need(self.dac_range > 0, "dac_range", "> 0")
        need(self.adc_range > 0, "adc_range", "> 0")
        need(self.wire_resistance >= 0, "wire_resistance", ">= 0 ohm")
        if problems:
            raise ValueError("CrossbarProfile: " + "; ".join(problems))

    # --------------------------------------------------------------------- device models
    def programming_sigma(self, g: torch.Tensor) -> torch.Tensor:
        """Standard deviation (uS) of programming a device to conductance ``g`` (uS)."""
        relative = g / self.g_max
        sigma = torch.zeros_like(g)
        for power, c in enumerate(self.programming_noise_coefficients):
            sigma = sigma + c * relative**power
        return sigma.clamp(min=0) * (self.g_max / PCM_REFERENCE_G_MAX)

    def drift_statistics(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and spread of the drift exponent ``nu`` of devices programmed to ``g`` (uS)."""
        relative = (g / self.g_max).abs().clamp(min=1e-7).log()
        mean = (-0.0155 * relative + 0.0244).clamp(0.049, 0.1)
        std = (-0.0125 * relative - 0.0059).clamp(0.008, 0.045)
        if self.drift_nu_mean is not None:
            mean = torch.full_like(g, self.drift_nu_mean)
        if self.drift_nu_std is not None:
            std = torch.full_like(g, self.drift_nu_std)
        return mean, std

    def tiles_for(self, n_sources: int, n_targets: int) -> tuple[int, int]:
        """(row tiles, column tiles) a ``[n_targets, n_sources]`` weight matrix occupies."""
        return math.ceil(n_sources / self.tile_rows), math.ceil(n_targets / self.tile_columns)


# --------------------------------------------------------------------------------- helpers
def _seed(*parts: int) -> int:
    """A 63-bit seed for ``torch.Generator`` derived from integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def quantize_symmetric(x: torch.Tensor, bits: int | None, full_scale: float) -> torch.Tensor:
    """Round to ``2**(bits-1) - 1`` steps per sign over ``[-full_scale, full_scale]`` (clips)."""
    if bits is None:
        return x
    n = 2 ** (bits - 1) - 1
    return torch.round(x * (n / full_scale)).clamp_(-n, n).div_(n).mul_(full_scale)


def ladder_attenuation(load: torch.Tensor) -> torch.Tensor:
    """Voltage at each device of a word line driven with 1 V at its start (IR drop).

    ``load[..., k] = r_wire * G_k`` (dimensionless) for the devices along a line, nearest the
    driver first; between the driver and device 0, and between consecutive devices, lies one
    wire segment of resistance ``r_wire``; each device sinks its current into a bit line held
    at virtual ground (bit-line resistance neglected).  Kirchhoff's current law at every node
    gives a tridiagonal system, solved exactly (Thomas algorithm, in float64).
    """
    dtype = load.dtype
    load = load.to(torch.float64)  # the recursion loses digits in float32 over long lines
    n = load.shape[-1]
    diag = 2.0 + load
    diag[..., -1] = 1.0 + load[..., -1]  # the last node has no wire beyond it
    denominators, ys = [], []
    denominator = diag[..., 0]
    y = 1.0 / denominator
    denominators.append(denominator)
    ys.append(y)
    for k in range(1, n):
        denominator = diag[..., k] - 1.0 / denominators[-1]
        y = ys[-1] / denominator
        denominators.append(denominator)
        ys.append(y)
    v = [None] * n
    v[-1] = ys[-1]
    for k in range(n - 2, -1, -1):
        v[k] = ys[k] + v[k + 1] / denominators[k]
    return torch.stack(v, dim=-1).to(dtype)


@dataclass
class DeviceState:
    """One projection's devices as the chip reads them (no read noise), all ``[target, source]``.

    ``g_plus``/``g_minus``: conductances in uS after programming, drift, faults and IR drop;
    ``stuck_plus``/``stuck_minus``: 0 healthy, 1 stuck off, 2 stuck on; ``w_max``: the weight
    that maps to ``g_max``; ``gain``: the drift-compensation gain (1 without).
    """

    g_plus: torch.Tensor
    g_minus: torch.Tensor
    stuck_plus: torch.Tensor
    stuck_minus: torch.Tensor
    w_max: float
    gain: float

    def weight(self, profile: CrossbarProfile) -> torch.Tensor:
        return (self.g_plus - self.g_minus) * (
            self.w_max * self.gain / (profile.g_max - profile.g_min)
        )


# --------------------------------------------------------------------------------- network
class Crossbar(EmulatedNetwork):
    """A spec on a memristive crossbar: analog matrix-vector products, float neurons.

    Options (beyond the float simulator's ``surrogate``/``dtype``):

    - ``profile``: a :class:`CrossbarProfile`, or a dict of figures to change in the default;
    - ``chip_seed`` (default ``seed``): the chip's faults and its programming draws;
    - ``read_seed`` (default derived from ``chip_seed``): the read-noise stream;
    - ``t_inference``: seconds since programming (drift applies beyond ``profile.drift_t0``);
    - ``drift_compensation`` (True): global drift compensation per projection;
    - ``ir_drop`` (False): IR drop along the rows with ``profile.wire_resistance``;
    - ``resample_in_training`` (False): re-program at every training forward pass.
    """

    profile_class = CrossbarProfile
    backend_name = "crossbar"

    def __init__(
        self,
        spec: NetworkSpec,
        profile: CrossbarProfile | dict | None = None,
        seed: int = 0,
        chip_seed: int | None = None,
        read_seed: int | None = None,
        t_inference: float = 0.0,
        drift_compensation: bool = True,
        ir_drop: bool = False,
        resample_in_training: bool = False,
        **options,
    ):
        super().__init__(spec, profile, seed=seed, **options)
        self.chip_seed = seed if chip_seed is None else int(chip_seed)
        self.read_seed = _seed(self.chip_seed, 1) if read_seed is None else int(read_seed)
        if t_inference < 0:
            raise ValueError(f"t_inference is {t_inference}; it must be >= 0 s")
        self.t_inference = float(t_inference)
        self.drift_compensation = bool(drift_compensation)
        self.ir_drop = bool(ir_drop)
        self.resample_in_training = bool(resample_in_training)
        self.programmings = 0  # how often the chip has been (re-)programmed after the first
        self._faults = self._draw_faults()
        self._programming = self._draw_programming()
        self._read_generators: dict[str, torch.Generator] = {}
        self._cache: dict[str, tuple] = {}

    # ------------------------------------------------------------------------- chip draws
    def _draw_faults(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Stuck-at faults per device (0 healthy, 1 off, 2 on): fixed for the physical chip."""
        generator = torch.Generator().manual_seed(_seed(self.chip_seed, 0))
        p_off, p_on = self.profile.stuck_off_rate, self.profile.stuck_on_rate
        faults = {}
        for proj in self.spec.projections:
            shape = self.float_weight(proj).shape
            pair = []
            for _ in range(2):  # G+, G-
                u = torch.rand(shape, generator=generator, dtype=torch.float64)
                stuck = torch.zeros(shape, dtype=torch.int8)
                stuck[u < p_off] = 1
                stuck[(u >= p_off) & (u < p_off + p_on)] = 2
                pair.append(stuck)
            faults[projection_key(proj)] = tuple(pair)
        return faults

    def _draw_programming(self) -> dict[str, dict[str, torch.Tensor]]:
        """Standard normals of the programming noise and of the drift exponents, per device."""
        generator = torch.Generator().manual_seed(_seed(self.chip_seed, 2, self.programmings))
        draws = {}
        for proj in self.spec.projections:
            shape = self.float_weight(proj).shape
            names = ("program_plus", "program_minus", "nu_plus", "nu_minus")
            draws[projection_key(proj)] = {
                n: torch.randn(shape, generator=generator, dtype=torch.float64) for n in names
            }
        return draws

    def program(self) -> None:
        """Re-program the chip: a new draw of programming noise and drift exponents (the
        stuck-at faults of the chip stay).  Deterministic: the k-th re-programming of a chip
        with a given ``chip_seed`` always draws the same."""
        self.programmings += 1
        self._programming = self._draw_programming()
        self._cache.clear()

    def runtime_state(self) -> dict:
        """The chip's state beyond its weights (for a training checkpoint): how often it was
        re-programmed and where its read-noise streams stand."""
        state = {name: g.get_state() for name, g in self._read_generators.items()}
        return {"programmings": self.programmings, "read": state}

    def load_runtime_state(self, state: dict) -> None:
        if state["programmings"] != self.programmings:
            self.programmings = state["programmings"]
            self._programming = self._draw_programming()
            self._cache.clear()
        self._read_generators.clear()
        for device, generator_state in state["read"].items():
            self._read_generator(torch.device(device)).set_state(generator_state)

    def reset_read_noise(self, read_seed: int | None = None) -> None:
        """Restart the read-noise stream (from ``read_seed`` if given)."""
        if read_seed is not None:
            self.read_seed = int(read_seed)
        self._read_generators.clear()

    def _read_generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._read_generators:
            self._read_generators[key] = torch.Generator(device=device).manual_seed(self.read_seed)
        return self._read_generators[key]

    # ------------------------------------------------------------------------- devices
    def device_state(self, proj: Projection) -> DeviceState:
        """The devices of ``proj`` as the chip reads them now (cached until anything changes)."""
        w = self.float_weight(proj)
        key = projection_key(proj)
        token = (
            w._version,
            w.data_ptr(),
            w.dtype,
            str(w.device),
            self.programmings,
            self.t_inference,
            self.drift_compensation,
            self.ir_drop,
            self.profile,
        )
        cached = self._cache.get(key)
        if cached is not None and cached[0] == token:
            return cached[1]
        with torch.no_grad():
            state = self._compute_state(key, w.detach())
        self._cache[key] = (token, state)
        return state

    def _compute_state(self, key: str, w: torch.Tensor) -> DeviceState:
        profile = self.profile
        w64 = w.to(torch.float64).cpu()
        w_max = float(w64.abs().max()) if w64.numel() else 0.0
        w_max = w_max if w_max > 0 else 1.0
        span = profile.g_max - profile.g_min
        u = w64 / w_max
        draws = self._programming[key]
        faults = self._faults[key]
        planes = []
        for sign, name in ((1, "plus"), (-1, "minus")):
            target = profile.g_min + span * (sign * u).clamp(min=0)
            if profile.levels is not None:
                step = span / (profile.levels - 1)
                target = profile.g_min + torch.round((target - profile.g_min) / step) * step
            noise = profile.programming_noise_scale * profile.programming_sigma(target)
            programmed = (target + noise * draws[f"program_{name}"]).clamp(min=0)
            mean, std = profile.drift_statistics(target)
            nu = (mean + std * draws[f"nu_{name}"]).abs()
            planes.append((programmed, nu, faults[0 if name == "plus" else 1]))

        def read_at(t: float) -> tuple[torch.Tensor, torch.Tensor]:
            out = []
            for programmed, nu, stuck in planes:
                g = programmed
                if t > profile.drift_t0:
                    g = g * (t / profile.drift_t0) ** (-nu)
                g = torch.where(stuck == 1, torch.full_like(g, profile.g_min), g)
                g = torch.where(stuck == 2, torch.full_like(g, profile.g_max), g)
                out.append(g)
            if self.ir_drop and profile.wire_resistance > 0:
                out = list(self._ir_drop(*out))
            return out[0], out[1]

        g_plus, g_minus = read_at(self.t_inference)
        gain = 1.0
        if self.drift_compensation and self.t_inference > profile.drift_t0:
            ref_plus, ref_minus = read_at(profile.drift_t0)
            reference = (ref_plus - ref_minus).sum(dim=1).abs().sum()
            now = (g_plus - g_minus).sum(dim=1).abs().sum()
            gain = float(reference / now) if now > 0 else 1.0
        return DeviceState(
            g_plus.to(w.dtype).to(w.device),
            g_minus.to(w.dtype).to(w.device),
            faults[0].to(w.device),
            faults[1].to(w.device),
            w_max,
            gain,
        )

    def _ir_drop(self, g_plus: torch.Tensor, g_minus: torch.Tensor):
        """Attenuate each device by the voltage left on its word line (``[target, source]``)."""
        profile = self.profile
        n_targets, n_sources = g_plus.shape
        columns = profile.tile_columns
        n_column_tiles = math.ceil(n_targets / columns)
        pad = n_column_tiles * columns - n_targets
        pad_with = (0, pad)  # unused cells of a partly used tile sit at g_min

        def lines(g):
            return torch.nn.functional.pad(g.T, pad_with, value=profile.g_min)

        # one word line per (source row, column tile): G+ and G- of each column, in turn
        devices = torch.stack([lines(g_plus), lines(g_minus)], dim=-1)
        devices = devices.reshape(n_sources, n_column_tiles, 2 * columns)
        attenuation = ladder_attenuation(devices * (profile.wire_resistance * 1e-6))
        attenuation = attenuation.reshape(n_sources, n_column_tiles * columns, 2)[:, :n_targets]
        return g_plus * attenuation[..., 0].T, g_minus * attenuation[..., 1].T

    # ------------------------------------------------------------------------- forward
    def weight(self, proj: Projection) -> torch.Tensor:
        """The chip's weight of ``proj`` (no read noise, DAC or ADC), straight-through to the
        stored float weight in the backward pass."""
        w = self.float_weight(proj)
        return straight_through(w, self.device_state(proj).weight(self.profile))

    def mvm(self, proj: Projection, x: torch.Tensor, mask: torch.Tensor | None = None):
        """The chip's product ``x @ W.T`` through ``proj`` for inputs ``x`` ``[..., source]``,
        in weight units: DAC, noisy reads, ADC per row tile, digital sum and gain.  ``mask``
        (``[target, source]``, 0/1) limits the read to some synapses.  No gradient."""
        profile = self.profile
        state = self.device_state(proj)
        g_plus, g_minus = state.g_plus, state.g_minus
        if mask is not None:
            g_plus, g_minus = g_plus * mask, g_minus * mask
        span = profile.g_max - profile.g_min
        with torch.no_grad():
            x = quantize_symmetric(x.detach(), profile.dac_bits, profile.dac_range)
            total = 0
            for start in range(0, x.shape[-1], profile.tile_rows):
                rows = slice(start, start + profile.tile_rows)
                xs = x[..., rows]
                y = xs @ ((g_plus[:, rows] - g_minus[:, rows]) / span).T
                if profile.read_noise > 0:
                    power = (g_plus[:, rows].square() + g_minus[:, rows].square()) / span**2
                    sigma = profile.read_noise * (xs.square() @ power.T).sqrt()
                    noise = torch.randn(
                        y.shape,
                        generator=self._read_generator(y.device),
                        dtype=y.dtype,
                        device=y.device,
                    )
                    y = y + sigma * noise
                if profile.output_noise > 0:
                    noise = torch.randn(
                        y.shape,
                        generator=self._read_generator(y.device),
                        dtype=y.dtype,
                        device=y.device,
                    )
                    y = y + profile.output_noise * noise
                total = total + quantize_symmetric(y, profile.adc_bits, profile.adc_range)
            return total * (state.w_max * state.gain)

    def _delayed_input(self, proj: Projection, delayed) -> torch.Tensor:
        """``sum_d W_d s(d)`` as the chip computes it: one crossbar read per delay group (the
        synapses of other delays are left out of that read), the chip's product forward and the
        gradient of ``s @ W_chip.T`` backward."""
        w = self.weight(proj)
        delays = self._delays.get(projection_key(proj))
        if delays is None:
            s = delayed(int(proj.delay))
            return straight_through(s @ w.T, self.mvm(proj, s))
        total = 0
        for d in delays.unique().tolist():
            s = delayed(d)
            mask = (delays == d).to(device=w.device, dtype=w.dtype)
            total = total + straight_through(s @ (w * mask).T, self.mvm(proj, s, mask))
        return total

    def _run_population(self, name, external, recurrent, record):
        # The fused scan multiplies by the recurrent weights inside its own loop; a population
        # with recurrent input takes the step loop so that those products are the chip's too.
        if not recurrent:
            return super()._run_population(name, external, recurrent, record)
        fused, self.fused = self.fused, False
        try:
            return super()._run_population(name, external, recurrent, record)
        finally:
            self.fused = fused

    def forward(self, x: torch.Tensor, record=()):
        if self.training and self.resample_in_training:
            self.program()
        return super().forward(x, record)

    # ------------------------------------------------------------------------- reports
    @classmethod
    def check(
        cls, spec: NetworkSpec, profile: CrossbarProfile | dict | None = None
    ) -> list[Violation]:
        """Every way ``spec`` exceeds the crossbar: tiles needed against tiles available (each
        projection tiled on its own arrays of ``tile_rows x tile_columns`` device pairs)."""
        profile = cls.make_profile(profile)
        violations = []
        total = 0
        shape = f"{profile.tile_rows}x{profile.tile_columns}"
        for k, proj in enumerate(spec.projections):
            rows, columns = profile.tiles_for(spec.size_of(proj.source), spec.size_of(proj.target))
            total += rows * columns
            if rows * columns > profile.n_tiles:
                violations.append(
                    Violation(
                        f"projections[{k}]",
                        f"crossbar tiles ({shape}) needed by {proj.name}",
                        rows * columns,
                        f"at most {profile.n_tiles}",
                        profile.name,
                    )
                )
        if total > profile.n_tiles:
            violations.append(
                Violation(
                    "projections",
                    f"crossbar tiles ({shape}) needed by all projections",
                    total,
                    f"at most {profile.n_tiles}",
                    profile.name,
                )
            )
        return violations

    def energy(self, activity) -> pd.DataFrame:
        """Energy per sample of ``activity``: a multiply-accumulate in the array for every
        synaptic event, and a digital neuron update per neuron and step."""
        p = self.profile
        return energy_table(
            [
                priced("synaptic operations", activity.synops, "ops", p, "energy_per_mac"),
                priced(
                    "neuron updates",
                    activity.neuron_steps(self.spec),
                    "neuron-steps",
                    p,
                    "energy_neuron_update",
                ),
            ]
        )

    @classmethod
    def resources(
        cls, spec: NetworkSpec, profile: CrossbarProfile | dict | None = None
    ) -> pd.DataFrame:
        """Tiles and devices used against the chip's capacity (2 devices per synapse)."""
        profile = cls.make_profile(profile)
        per_tile = profile.tile_rows * profile.tile_columns * 2
        rows, tiles, devices = [], 0, 0
        for proj in spec.projections:
            n_source, n_target = spec.size_of(proj.source), spec.size_of(proj.target)
            r, c = profile.tiles_for(n_source, n_target)
            tiles += r * c
            devices += 2 * n_source * n_target
            rows.append((f"tiles: {proj.name}", r * c, profile.n_tiles))
        return resource_table(
            [
                ("crossbar tiles", tiles, profile.n_tiles),
                ("devices (2 per synapse)", devices, profile.n_tiles * per_tile),
                ("devices in the tiles used", devices, max(tiles, 1) * per_tile),
                *rows,
            ]
        )

    def deployment_report(self) -> pd.DataFrame:
        """The base report plus the stuck devices of each projection."""
        report = super().deployment_report()
        report["stuck_devices"] = [
            int(((s := self.device_state(p)).stuck_plus > 0).sum() + (s.stuck_minus > 0).sum())
            for p in self.spec.projections
        ]
        return report
