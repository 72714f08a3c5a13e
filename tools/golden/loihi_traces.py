"""Golden traces of Lava's bit-accurate Loihi models, for the project's Loihi emulator.

Runs in the Lava venv (Python 3.10, lava-nc 0.10.0; see tools/golden/README.md, section
"Loihi (Lava)"), NOT in the project's venv:

    /work/vendor/lava-venv/bin/python tools/golden/loihi_traces.py [--out DIR] [--only NAME...]

Every case is a small, seeded random integer network: a RingBuffer (input spikes) feeding LIF
populations through Dense or DelayDense projections, run with ``Loihi1SimCfg(select_tag=
"fixed_pt")`` and the models pinned to ``PyLifModelBitAcc``, ``PyDenseModelBitAcc`` and
``PyDelayDenseModelBitAcc``.  Monitors record, at every step, each population's ``u``, ``v``
and ``s_out`` and each projection's ``a_out`` (what it delivers to its target at that step).
One ``np.savez_compressed`` file per case goes to tests/data/golden/loihi/ (format: README.md
and :data:`FORMAT` below).  The same seed gives the same files.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
MASTER_SEED = 20240801
OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "golden" / "loihi"

FORMAT = """\
Keys of one golden file (np.load(path) works without allow_pickle; integers use the smallest
dtype that holds them, so cast with .astype(np.int64) before arithmetic):
  format_version, case, category, description, seed, lava_version, numpy_version, models
  n_steps T, n_in
  input              [T, n_in]  uint8   RingBuffer column t is sent at Lava step t+1 (1-based),
                                        i.e. it is the spike of 0-based step t
  populations        [P] str            population names (LIF processes), in spec order
  pop.<p>.size, .du, .dv, .bias_mant, .bias_exp, .vth, .v_init   scalars, as given to LIF
                                        (u starts at 0; every neuron of a population shares them)
  pop.<p>.u, .v      [T, n]             state after 0-based step t (Monitor, post-management)
  pop.<p>.spikes     [T, n]   uint8     s_out of step t
  n_projections J
  proj.<k>.source    str                'input' or a population name
  proj.<k>.target    str                a population name
  proj.<k>.kind      str                'Dense' or 'DelayDense'
  proj.<k>.weights   [n_target, n_source]   as given to the process
  proj.<k>.weight_exp, .num_weight_bits (8 when not given), .num_weight_bits_given (0/1)
  proj.<k>.sign_mode           SignMode value given (-1: not given, Lava determines it)
  proj.<k>.sign_mode_effective SignMode value Lava used (1 MIXED, 2 EXCITATORY, 3 INHIBITORY)
  proj.<k>.weights_stored      weights read back from the process after the run (clipped and
                               truncated by Lava at its first step)
  proj.<k>.delays    [n_target, n_source]   DelayDense only (read back equals given)
  proj.<k>.max_delay           DelayDense only: the a_buff depth - 1
  proj.<k>.a_out     [T, n_target]      the activation the projection sends at step t (int32 on
                                        the channel); the target's u at step t receives it << 6
"""


# ------------------------------------------------------------------------------ case builders
def population(name, size, du, dv, vth, bias_mant=0, bias_exp=0, v_init=0):
    return dict(
        name=name,
        size=int(size),
        du=int(du),
        dv=int(dv),
        vth=int(vth),
        bias_mant=int(bias_mant),
        bias_exp=int(bias_exp),
        v_init=int(v_init),
    )


def projection(
    source, target, weights, weight_exp=0, delays=None, num_weight_bits=None, sign_mode=None
):
    return dict(
        source=source,
        target=target,
        weights=np.asarray(weights, dtype=np.int64),
        weight_exp=int(weight_exp),
        delays=None if delays is None else np.asarray(delays, dtype=np.int64),
        num_weight_bits=num_weight_bits,
        sign_mode=sign_mode,  # None or a SignMode name
    )


def make_case(name, category, description, inp, pops, projs):
    inp = np.asarray(inp, dtype=np.uint8)
    return dict(
        name=name, category=category, description=description, input=inp, pops=pops, projs=projs
    )


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([MASTER_SEED, zlib.crc32(name.encode())])


def raster(rng, steps, n, p):
    return (rng.random((steps, n)) < p).astype(np.uint8)


def mixed(rng, shape, low=-256, high=255):
    """Random integers in [low, high] with both signs present (odd values included)."""
    w = rng.integers(low, high + 1, size=shape)
    if w.size >= 2 and (w.min() >= 0 or w.max() <= 0):
        w.flat[0], w.flat[1] = low, high
    return w


def build_cases() -> list[dict]:
    cases = []
    add = cases.append

    # ---- decay corners: du, dv in {0, 4095, 4096, random}
    corners = {"0": 0, "4095": 4095, "4096": 4096, "r": None}
    for du_name, du in corners.items():
        for dv_name, dv in corners.items():
            name = f"decay_du{du_name}_dv{dv_name}"
            rng = rng_for(name)
            du_ = int(rng.integers(1, 4095)) if du is None else du
            dv_ = int(rng.integers(1, 4095)) if dv is None else dv
            n_in, n = 4, 6
            steps = 40
            pops = [
                population(
                    "A",
                    n,
                    du_,
                    dv_,
                    vth=int(rng.integers(60, 400)),
                    bias_mant=int(rng.integers(-40, 120)),
                    bias_exp=int(rng.integers(0, 4)),
                )
            ]
            projs = [projection("input", "A", mixed(rng, (n, n_in), -128, 254))]
            add(
                make_case(
                    name,
                    "decay",
                    f"one LIF population, du={du_}, dv={dv_}",
                    raster(rng, steps, n_in, 0.3),
                    pops,
                    projs,
                )
            )

    # ---- weight exponents, negative and positive (two layers, Dense)
    for e in (-8, -6, -3, -1, 1, 3, 5, 7):
        name = f"wexp_{'m' if e < 0 else 'p'}{abs(e)}"
        rng = rng_for(name)
        n_in, na, nb, steps = 6, 8, 4, 40
        scale = 128 * 2.0**e

        def vth(rng=rng, scale=scale):
            return int(np.clip(round(rng.uniform(0.5, 3.0) * scale), 1, 2**17 - 1))

        pops = [
            population("A", na, rng.integers(0, 4096), rng.integers(0, 4096), vth()),
            population("B", nb, rng.integers(0, 4096), rng.integers(0, 4096), vth()),
        ]
        projs = [
            projection("input", "A", mixed(rng, (na, n_in)), weight_exp=e),
            projection("A", "B", mixed(rng, (nb, na)), weight_exp=e),
        ]
        add(
            make_case(
                name,
                "weight_exp",
                f"input->A->B, Dense, weight_exp={e}",
                raster(rng, steps, n_in, 0.35),
                pops,
                projs,
            )
        )

    # ---- per-synapse delays (DelayDense)
    def delay_case(
        name,
        description,
        e,
        steps=60,
        n_in=10,
        n=8,
        p=0.4,
        dmin=0,
        dmax=62,
        fixed=None,
        weights=None,
        vth=None,
    ):
        rng = rng_for(name)
        w = mixed(rng, (n, n_in)) if weights is None else weights(rng, (n, n_in))
        d = (
            rng.integers(dmin, dmax + 1, size=(n, n_in))
            if fixed is None
            else np.full((n, n_in), fixed)
        )
        if dmin > 0:
            d[0, 0] = dmax
        th = vth if vth is not None else int(np.clip(round(200 * 2.0**e), 1, 2**17 - 1))
        pops = [population("A", n, rng.integers(0, 4096), rng.integers(0, 4096), th)]
        projs = [projection("input", "A", w, weight_exp=e, delays=d)]
        return make_case(name, "delay", description, raster(rng, steps, n_in, p), pops, projs)

    add(delay_case("delay_wexp_m3", "DelayDense input->A, delays 0..62, weight_exp=-3", -3))
    add(
        delay_case(
            "delay_wexp_m6",
            "DelayDense, dense input, delays 0..12, weight_exp=-6",
            -6,
            n_in=16,
            p=0.7,
            dmax=12,
        )
    )
    add(
        delay_case(
            "delay_wexp_m1_odd",
            "DelayDense, odd mixed weights, delays 0..5, exp=-1",
            -1,
            n_in=12,
            p=0.6,
            dmax=5,
        )
    )
    add(delay_case("delay_wexp_0", "DelayDense, delays 0..62, weight_exp=0", 0))
    add(delay_case("delay_wexp_p2", "DelayDense, delays 0..62, weight_exp=2", 2))
    add(
        delay_case(
            "delay_d62_T64",
            "DelayDense, delays 55..62 reach step 63, weight_exp=-2",
            -2,
            steps=64,
            n_in=4,
            n=3,
            p=0.5,
            dmin=55,
            dmax=62,
        )
    )
    add(
        delay_case(
            "delay_all0_wexp_m2",
            "DelayDense with every delay 0, weight_exp=-2",
            -2,
            n_in=12,
            p=0.6,
            fixed=0,
        )
    )
    add(
        delay_case(
            "delay_all5_wexp_m3",
            "DelayDense with every delay 5, weight_exp=-3",
            -3,
            n_in=12,
            p=0.6,
            fixed=5,
        )
    )
    add(
        delay_case(
            "delay_weights_outside",
            "DelayDense, weights in [-400, 400] (clipped, truncated), exp=-2",
            -2,
            dmax=8,
            weights=lambda rng, s: rng.integers(-400, 401, size=s),
        )
    )
    for name, e in (("delay_between_pops_m4", -4), ("delay_recurrent_m2", -2)):
        rng = rng_for(name)
        n_in, na, nb, steps = 6, 8, 6, 60
        pops = [
            population("A", na, rng.integers(0, 4096), rng.integers(0, 4096), 40),
            population("B", nb, rng.integers(0, 4096), rng.integers(0, 4096), 30),
        ]
        if name.startswith("delay_between"):
            projs = [
                projection("input", "A", mixed(rng, (na, n_in), -60, 254), weight_exp=2),
                projection(
                    "A",
                    "B",
                    mixed(rng, (nb, na)),
                    weight_exp=e,
                    delays=rng.integers(0, 30, size=(nb, na)),
                ),
            ]
            desc = "Dense input->A, DelayDense A->B delays 0..29, weight_exp=-4"
        else:
            pops = pops[:1]
            projs = [
                projection("input", "A", mixed(rng, (na, n_in), -60, 254), weight_exp=1),
                projection(
                    "A",
                    "A",
                    mixed(rng, (na, na)),
                    weight_exp=e,
                    delays=rng.integers(0, 21, size=(na, na)),
                ),
            ]
            desc = "DelayDense self-projection A->A, delays 0..20, weight_exp=-2"
        add(make_case(name, "delay", desc, raster(rng, steps, n_in, 0.3), pops, projs))

    # ---- bias with exponents, v saturation
    big = 2**17  # vth << 6 = 2**23 > any v: never spikes (LI-like)
    rng = rng_for("bias_exponents")
    add(
        make_case(
            "bias_exponents",
            "bias",
            "bias_mant << bias_exp for exp 0..7, no input spikes",
            np.zeros((30, 1)),
            [
                population(
                    f"E{e}",
                    2,
                    rng.integers(0, 4096),
                    rng.integers(0, 4096),
                    big,
                    bias_mant=m,
                    bias_exp=e,
                )
                for e, m in zip(range(8), (37, -1200, 999, -5, 4095, -4096, 333, 1))
            ],
            [projection("input", f"E{e}", np.zeros((2, 1), int)) for e in range(8)],
        )
    )
    rng = rng_for("bias_saturation")
    add(
        make_case(
            "bias_saturation",
            "saturation",
            "v saturates at +-(2**23-1) from bias 4095<<7 and -4096<<7 (dv=0, vth huge)",
            np.zeros((40, 1)),
            [
                population("P", 2, 0, 0, big, bias_mant=4095, bias_exp=7),
                population("N", 2, 0, 0, big, bias_mant=-4096, bias_exp=7),
                population("Q", 2, 4095, 0, 2**17 - 1, bias_mant=4095, bias_exp=7),
            ],
            [
                projection("input", "P", np.zeros((2, 1), int)),
                projection("input", "N", np.zeros((2, 1), int)),
                projection("input", "Q", np.zeros((2, 1), int)),
            ],
        )
    )
    rng = rng_for("bias_periodic")
    add(
        make_case(
            "bias_periodic",
            "bias",
            "bias-driven periodic spiking plus input",
            raster(rng, 50, 3, 0.2),
            [
                population("A", 5, 300, 100, 200, bias_mant=100, bias_exp=4),
                population("B", 4, 4095, 4095, 900, bias_mant=-77, bias_exp=6),
            ],
            [
                projection("input", "A", mixed(rng, (5, 3)), weight_exp=1),
                projection("A", "B", mixed(rng, (4, 5), -100, 255), weight_exp=3),
            ],
        )
    )
    rng = rng_for("bias_negative_exp")
    add(
        make_case(
            "bias_negative_exp",
            "out_of_spec",
            "bias_exp=-2 (outside Lava's documented 0..7): Lava right-shifts the mantissa",
            raster(rng, 20, 2, 0.3),
            [population("A", 3, 100, 200, 50, bias_mant=1001, bias_exp=-2)],
            [projection("input", "A", mixed(rng, (3, 2)), weight_exp=0)],
        )
    )

    # ---- u at and beyond the 24-bit edges
    steps = 12
    inp = np.zeros((steps, 8), np.uint8)
    inp[0, :] = 1  # 8 x 128 << 7 << 6 = 2**23 exactly
    inp[3, :4] = 1  # 2**22
    inp[6, :] = 1
    inp[7, :] = 1  # decayed + 2**23
    add(
        make_case(
            "u_edge_exact",
            "u_overflow",
            "u = +2**23 and -2**23 exactly (8 x +-128 << 7), du=4095 and du=100",
            inp,
            [
                population("P", 1, 4095, 4095, big),
                population("N", 1, 4095, 4095, big),
                population("Pd", 1, 100, 0, big),
                population("Nd", 1, 100, 0, big),
            ],
            [
                projection("input", "P", np.full((1, 8), 128), weight_exp=7),
                projection("input", "N", np.full((1, 8), -128), weight_exp=7),
                projection("input", "Pd", np.full((1, 8), 128), weight_exp=7),
                projection("input", "Nd", np.full((1, 8), -128), weight_exp=7),
            ],
        )
    )
    for name, du, sign, p in (
        ("u_overflow_pos_du0", 0, 1, 0.9),
        ("u_overflow_neg_du0", 0, -1, 0.9),
        ("u_overflow_pos_decay", 700, 1, 0.7),
        ("u_overflow_mixed", 2000, 0, 0.8),
    ):
        rng = rng_for(name)
        n_in, n = (20, 4) if sign else (40, 4)
        steps = 60 if du == 0 else 40
        inp = raster(rng, steps, n_in, p)
        if sign == 0:  # inputs 0..19 excite, 20..39 inhibit, in alternating bursts of 5 steps
            w = rng.integers(200, 256, size=(n, n_in)) * np.where(np.arange(n_in) < 20, 1, -1)
            burst = (np.arange(steps) // 5) % 2
            inp[:, :20] *= (burst == 0)[:, None]
            inp[:, 20:] *= (burst == 1)[:, None]
        else:
            w = sign * rng.integers(200, 256, size=(n, n_in))
        add(
            make_case(
                name,
                "u_overflow",
                f"large weights << 7 (sign {sign:+d}), du={du}: u leaves the 24-bit range"
                + (" on both sides (bursts)" if sign == 0 else ""),
                inp,
                [
                    population("A", n, du, int(rng.integers(0, 4096)), big),
                    population("S", n, du, 4095, 2**16),
                ],
                [
                    projection("input", "A", w, weight_exp=7),
                    projection("input", "S", w, weight_exp=6),
                ],
            )
        )
    rng = rng_for("u_int32_overflow")
    add(
        make_case(
            "u_int32_overflow",
            "out_of_spec",
            "weight_exp=8 (beyond 7), 20 x 255 every step, du=0: u passes 2**31 in Lava's "
            "int32 arithmetic",
            np.ones((60, 20)),
            [population("A", 2, 0, 4095, big)],
            [projection("input", "A", np.full((2, 20), 255), weight_exp=8)],
        )
    )
    rng = rng_for("v_saturation_input")
    add(
        make_case(
            "v_saturation_input",
            "saturation",
            "v saturates from input (dv=0), both signs, vth huge and vth=2**17-1",
            raster(rng, 40, 10, 0.6),
            [population("A", 4, 2048, 0, big), population("B", 4, 2048, 0, 2**17 - 1)],
            [
                projection("input", "A", mixed(rng, (4, 10)), weight_exp=5),
                projection("input", "B", rng.integers(100, 256, size=(4, 10)), weight_exp=5),
            ],
        )
    )

    # ---- weight storage: sign modes, clipping, truncation
    def storage_case(
        name, description, weights, e=0, num_weight_bits=None, sign_mode=None, n_in=6, n=5
    ):
        rng = rng_for(name)
        w = weights(rng, (n, n_in))
        return make_case(
            name,
            "weights",
            description,
            raster(rng, 40, n_in, 0.4),
            [population("A", n, rng.integers(0, 4096), rng.integers(0, 4096), 150)],
            [
                projection(
                    "input",
                    "A",
                    w,
                    weight_exp=e,
                    num_weight_bits=num_weight_bits,
                    sign_mode=sign_mode,
                )
            ],
        )

    add(
        storage_case(
            "w_mixed_odd",
            "mixed sign, odd values in [-256, 255] (truncated to even)",
            lambda r, s: mixed(r, s) | 1,
        )
    )
    add(
        storage_case(
            "w_mixed_outside",
            "mixed sign in [-400, 400] (clipped to [-256, 255], even)",
            lambda r, s: mixed(r, s, -400, 400),
        )
    )
    add(
        storage_case(
            "w_negative",
            "all-negative in [-300, 0], odd values (clipped to -255)",
            lambda r, s: -r.integers(0, 301, size=s),
            e=1,
        )
    )
    add(
        storage_case(
            "w_positive",
            "all-positive in [0, 300], odd values (clipped to 255)",
            lambda r, s: r.integers(0, 301, size=s),
            e=-1,
        )
    )
    add(
        storage_case(
            "w_mode_mixed_on_positive",
            "sign_mode=MIXED given on all-positive weights",
            lambda r, s: r.integers(0, 256, size=s),
            sign_mode="MIXED",
        )
    )
    add(
        storage_case(
            "w_mode_exc_on_mixed",
            "sign_mode=EXCITATORY given on mixed weights",
            lambda r, s: mixed(r, s),
            sign_mode="EXCITATORY",
        )
    )
    add(
        storage_case(
            "w_mode_inh_on_mixed",
            "sign_mode=INHIBITORY given on mixed weights",
            lambda r, s: mixed(r, s),
            sign_mode="INHIBITORY",
        )
    )
    add(
        storage_case(
            "w_bits6_mixed",
            "num_weight_bits=6, mixed (multiples of 8, floored)",
            lambda r, s: mixed(r, s),
            num_weight_bits=6,
        )
    )
    add(
        storage_case(
            "w_bits4_positive",
            "num_weight_bits=4, all-positive (multiples of 16)",
            lambda r, s: r.integers(0, 256, size=s),
            num_weight_bits=4,
            e=2,
        )
    )
    add(
        storage_case(
            "w_bits5_negative",
            "num_weight_bits=5, all-negative (toward zero, x8)",
            lambda r, s: -r.integers(0, 256, size=s),
            num_weight_bits=5,
        )
    )
    add(storage_case("w_zero", "all-zero weights", lambda r, s: np.zeros(s, int)))

    # ---- recurrence and feedback
    def rec_case(name, description, pops, projs, steps=50, n_in=5, p=0.3):
        return make_case(
            name, "recurrence", description, raster(rng_for(name), steps, n_in, p), pops, projs
        )

    rng = rng_for("rec_self")
    add(
        rec_case(
            "rec_self",
            "A->A Dense self-projection, mixed weights",
            [population("A", 10, 1000, 500, 120)],
            [
                projection("input", "A", mixed(rng, (10, 5), -50, 255), weight_exp=1),
                projection("A", "A", mixed(rng, (10, 10)), weight_exp=0),
            ],
        )
    )
    rng = rng_for("rec_self_negexp")
    add(
        rec_case(
            "rec_self_negexp",
            "A->A self-projection, weight_exp=-3, bias",
            [population("A", 12, 300, 3000, 20, bias_mant=3, bias_exp=2)],
            [
                projection("input", "A", mixed(rng, (12, 5)), weight_exp=0),
                projection("A", "A", mixed(rng, (12, 12)), weight_exp=-3),
            ],
        )
    )
    rng = rng_for("rec_feedback")
    add(
        rec_case(
            "rec_feedback",
            "input->A->B, feedback B->A",
            [population("A", 8, 2000, 1000, 100), population("B", 6, 1500, 800, 80)],
            [
                projection("input", "A", mixed(rng, (8, 5), -30, 255), weight_exp=1),
                projection("A", "B", mixed(rng, (6, 8)), weight_exp=1),
                projection("B", "A", mixed(rng, (8, 6)), weight_exp=1),
            ],
        )
    )
    rng = rng_for("rec_loop3")
    add(
        rec_case(
            "rec_loop3",
            "A->B->C->A loop plus A->A, three populations",
            [
                population("A", 6, 3000, 200, 90),
                population("B", 5, 100, 4000, 70),
                population("C", 4, 4095, 1000, 60, bias_mant=-20, bias_exp=1),
            ],
            [
                projection("input", "A", mixed(rng, (6, 5), -30, 255), weight_exp=1),
                projection("A", "A", mixed(rng, (6, 6)), weight_exp=-1),
                projection("A", "B", mixed(rng, (5, 6)), weight_exp=1),
                projection("B", "C", mixed(rng, (4, 5)), weight_exp=1),
                projection("C", "A", mixed(rng, (6, 4)), weight_exp=2),
            ],
        )
    )
    rng = rng_for("rec_runaway")
    add(
        rec_case(
            "rec_runaway",
            "self-excitation with weight_exp=6 drives u over the edge",
            [population("A", 8, 10, 4095, 50)],
            [
                projection("input", "A", rng.integers(50, 256, size=(8, 5)), weight_exp=0),
                projection("A", "A", rng.integers(150, 256, size=(8, 8)), weight_exp=6),
            ],
            steps=30,
        )
    )
    rng = rng_for("rec_feedback_delay")
    add(
        rec_case(
            "rec_feedback_delay",
            "A->B Dense, B->A DelayDense feedback (delays 0..9, exp=-1)",
            [population("A", 7, 900, 900, 60), population("B", 5, 2500, 100, 50)],
            [
                projection("input", "A", mixed(rng, (7, 5), -30, 255), weight_exp=1),
                projection("A", "B", mixed(rng, (5, 7)), weight_exp=1),
                projection(
                    "B",
                    "A",
                    mixed(rng, (7, 5)),
                    weight_exp=-1,
                    delays=rng.integers(0, 10, size=(7, 5)),
                ),
            ],
        )
    )

    # ---- LI-like outputs, threshold comparison, initial v
    rng = rng_for("li_readout")
    add(
        make_case(
            "li_readout",
            "li",
            "A spiking -> B with vth=2**17 (never spikes: an LI readout)",
            raster(rng, 50, 6, 0.3),
            [population("A", 10, 1200, 600, 100), population("B", 3, 500, 200, big)],
            [
                projection("input", "A", mixed(rng, (10, 6), -40, 255), weight_exp=1),
                projection("A", "B", mixed(rng, (3, 10)), weight_exp=2),
            ],
        )
    )
    rng = rng_for("li_negative_readout")
    add(
        make_case(
            "li_negative_readout",
            "li",
            "LI readout with bias and saturating negative drive (dv=10, vth=2**17)",
            raster(rng, 40, 8, 0.5),
            [population("A", 3, 200, 10, big, bias_mant=-500, bias_exp=3)],
            [projection("input", "A", -rng.integers(100, 256, size=(3, 8)), weight_exp=6)],
        )
    )
    inp = np.zeros((10, 1), np.uint8)
    inp[[0, 3, 6], 0] = 1
    add(
        make_case(
            "threshold_equal",
            "threshold",
            "v == vth << 6 exactly does not spike, v == (vth << 6) + 128 does (du=4095, dv=4096)",
            inp,
            [population("Eq", 2, 4095, 4096, 64), population("Above", 2, 4095, 4096, 64)],
            [
                projection("input", "Eq", np.full((2, 1), 64)),
                projection("input", "Above", np.full((2, 1), 66)),
            ],
        )
    )
    rng = rng_for("v_init")
    add(
        make_case(
            "v_init",
            "v_init",
            "v starts at +5000 (above vth << 6: spikes at step 0) and at -300000",
            raster(rng, 30, 3, 0.3),
            [
                population("Hi", 3, 100, 50, 70, v_init=5000),
                population("Lo", 3, 100, 50, 70, bias_mant=200, bias_exp=5, v_init=-300000),
            ],
            [
                projection("input", "Hi", mixed(rng, (3, 3)), weight_exp=1),
                projection("input", "Lo", mixed(rng, (3, 3)), weight_exp=1),
            ],
        )
    )
    rng = rng_for("vth_beyond_17bit")
    add(
        make_case(
            "vth_beyond_17bit",
            "out_of_spec",
            "vth = 2**20 (beyond 17 bits) and 0",
            raster(rng, 30, 4, 0.5),
            [population("A", 3, 1000, 0, 2**20), population("Z", 3, 1000, 1000, 0)],
            [
                projection("input", "A", rng.integers(100, 256, size=(3, 4)), weight_exp=7),
                projection("input", "Z", mixed(rng, (3, 4)), weight_exp=0),
            ],
        )
    )

    # ---- random networks within the documented ranges
    for k in range(8):
        name = f"random_{k}"
        rng = rng_for(name)
        n_pops = int(rng.integers(1, 4))
        names = ["A", "B", "C"][:n_pops]
        n_in = int(rng.integers(1, 11))
        steps = int(rng.integers(10, 61))
        pops, projs = [], []
        for i, pname in enumerate(names):
            e_in = int(rng.integers(-4, 5))
            pops.append(
                population(
                    pname,
                    rng.integers(1, 21),
                    rng.integers(0, 4096),
                    rng.integers(0, 4096),
                    int(np.clip(round(rng.uniform(0.3, 3) * 128 * 2.0**e_in), 1, 2**17 - 1)),
                    bias_mant=rng.integers(-200, 200) if rng.random() < 0.5 else 0,
                    bias_exp=rng.integers(0, 8) if rng.random() < 0.3 else rng.integers(0, 3),
                    v_init=rng.integers(-1000, 1000) if rng.random() < 0.3 else 0,
                )
            )
            source = "input" if i == 0 or rng.random() < 0.3 else names[i - 1]
            sources = {source} | ({names[i - 1]} if i > 0 else set())
            if rng.random() < 0.35:
                sources.add(pname)  # self-projection
            if i == n_pops - 1 and n_pops > 1 and rng.random() < 0.5:
                sources.add(names[0])  # a skip connection from the first population
            for src in sorted(sources):
                n_src = n_in if src == "input" else pops[names.index(src)]["size"]
                n_tgt = pops[-1]["size"]
                delays = None
                if rng.random() < 0.4:
                    delays = rng.integers(0, int(rng.integers(1, 63)) + 1, size=(n_tgt, n_src))
                projs.append(
                    projection(
                        src, pname, mixed(rng, (n_tgt, n_src)), weight_exp=e_in, delays=delays
                    )
                )
        if n_pops > 1 and rng.random() < 0.6:  # a feedback projection last -> first
            last, first = pops[-1], pops[0]
            projs.append(
                projection(
                    last["name"],
                    first["name"],
                    mixed(rng, (first["size"], last["size"])),
                    weight_exp=int(rng.integers(-3, 4)),
                )
            )
        add(
            make_case(
                name,
                "random",
                f"random network, {n_pops} population(s)",
                raster(rng, steps, n_in, rng.uniform(0.1, 0.6)),
                pops,
                projs,
            )
        )
    return cases


# ------------------------------------------------------------------------------ running on Lava
def smallest(a) -> np.ndarray:
    """``a`` as the smallest integer dtype that holds its values."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if not np.all(a == np.round(a)):
            raise ValueError("non-integer values in a recording")
        a = a.astype(np.int64)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dt in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt)
    raise ValueError("out of int64 range")


def run_case(case: dict) -> dict:
    import lava
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi1SimCfg
    from lava.proc.dense.models import PyDelayDenseModelBitAcc, PyDenseModelBitAcc
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import PySendModelFixed, RingBuffer
    from lava.proc.lif.models import PyLifModelBitAcc
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode, determine_sign_mode

    inp = case["input"]
    steps, n_in = inp.shape
    source = RingBuffer(data=inp.T.astype(np.int32))  # [n_in, T]: column t is sent at step t+1
    lifs = {}
    for p in case["pops"]:
        lifs[p["name"]] = LIF(
            shape=(p["size"],),
            u=0,
            v=p["v_init"],
            du=p["du"],
            dv=p["dv"],
            bias_mant=p["bias_mant"],
            bias_exp=p["bias_exp"],
            vth=p["vth"],
            name=f"lif_{p['name']}",
        )
    conns = []
    for k, pr in enumerate(case["projs"]):
        kwargs = dict(weights=pr["weights"].copy(), weight_exp=pr["weight_exp"], name=f"conn_{k}")
        if pr["num_weight_bits"] is not None:
            kwargs["num_weight_bits"] = pr["num_weight_bits"]
        if pr["sign_mode"] is not None:
            kwargs["sign_mode"] = SignMode[pr["sign_mode"]]
        if pr["delays"] is None:
            conn = Dense(**kwargs)
        else:
            conn = DelayDense(delays=pr["delays"].astype(int).copy(), **kwargs)
        src_port = source.s_out if pr["source"] == "input" else lifs[pr["source"]].s_out
        src_port.connect(conn.s_in)
        conn.a_out.connect(lifs[pr["target"]].a_in)
        conns.append(conn)

    monitors = {}
    for name, lif in lifs.items():
        for key, target in (("u", lif.u), ("v", lif.v), ("spikes", lif.s_out)):
            m = Monitor()
            m.probe(target, steps)
            monitors[(name, key)] = (m, lif.name, "s_out" if key == "spikes" else key)
    for k, conn in enumerate(conns):
        m = Monitor()
        m.probe(conn.a_out, steps)
        monitors[(k, "a_out")] = (m, conn.name, "a_out")

    cfg = Loihi1SimCfg(
        select_tag="fixed_pt",
        exception_proc_model_map={
            LIF: PyLifModelBitAcc,
            Dense: PyDenseModelBitAcc,
            DelayDense: PyDelayDenseModelBitAcc,
            RingBuffer: PySendModelFixed,
        },
    )
    anchor = next(iter(lifs.values()))
    anchor.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
    try:
        data = {}
        for key, (m, proc_name, var) in monitors.items():
            data[key] = np.asarray(m.get_data()[proc_name][var])
        stored = [np.asarray(c.weights.get()) for c in conns]
        delays_back = [
            np.asarray(c.delays.get()) if isinstance(c, DelayDense) else None for c in conns
        ]
        readback = {
            name: dict(
                du=lif.du.get(),
                dv=lif.dv.get(),
                vth=lif.vth.get(),
                bias_mant=lif.bias_mant.get(),
                bias_exp=lif.bias_exp.get(),
            )
            for name, lif in lifs.items()
        }
        models = sorted(
            {
                type(proc).__name__ + ":" + proc.model_class.__name__
                for proc in [source, *lifs.values(), *conns]
            }
        )
    finally:
        anchor.stop()

    expected = {
        "LIF:PyLifModelBitAcc",
        "Dense:PyDenseModelBitAcc",
        "DelayDense:PyDelayDenseModelBitAcc",
        "RingBuffer:PySendModelFixed",
    }
    if not set(models) <= expected:
        raise RuntimeError(f"{case['name']}: unexpected process models {models}")

    out = {
        "format_version": np.int16(FORMAT_VERSION),
        "case": np.array(case["name"]),
        "category": np.array(case["category"]),
        "description": np.array(case["description"]),
        "seed": np.array([MASTER_SEED, zlib.crc32(case["name"].encode())], np.int64),
        "lava_version": np.array(getattr(lava, "__version__", "0.10.0")),
        "numpy_version": np.array(np.__version__),
        "models": np.array(", ".join(models)),
        "n_steps": np.int16(steps),
        "n_in": np.int16(n_in),
        "input": inp.astype(np.uint8),
        "populations": np.array([p["name"] for p in case["pops"]]),
        "n_projections": np.int16(len(case["projs"])),
    }
    for p in case["pops"]:
        name = p["name"]
        for key in ("size", "du", "dv", "bias_mant", "bias_exp", "vth", "v_init"):
            out[f"pop.{name}.{key}"] = np.int64(p[key])
        for key, value in readback[name].items():
            if not np.all(np.asarray(value) == p[key]):
                raise RuntimeError(f"{case['name']}: {name}.{key} read back as {value}")
        out[f"pop.{name}.u"] = smallest(data[(name, "u")])
        out[f"pop.{name}.v"] = smallest(data[(name, "v")])
        out[f"pop.{name}.spikes"] = data[(name, "spikes")].astype(np.uint8)
    for k, pr in enumerate(case["projs"]):
        w = pr["weights"]
        given = SignMode[pr["sign_mode"]] if pr["sign_mode"] is not None else None
        effective = given or determine_sign_mode(w.astype(np.int32))
        out[f"proj.{k}.source"] = np.array(pr["source"])
        out[f"proj.{k}.target"] = np.array(pr["target"])
        out[f"proj.{k}.kind"] = np.array("Dense" if pr["delays"] is None else "DelayDense")
        out[f"proj.{k}.weights"] = smallest(w)
        out[f"proj.{k}.weight_exp"] = np.int8(pr["weight_exp"])
        out[f"proj.{k}.num_weight_bits"] = np.int8(pr["num_weight_bits"] or 8)
        out[f"proj.{k}.num_weight_bits_given"] = np.int8(pr["num_weight_bits"] is not None)
        out[f"proj.{k}.sign_mode"] = np.int8(-1 if given is None else given.value)
        out[f"proj.{k}.sign_mode_effective"] = np.int8(effective.value)
        out[f"proj.{k}.weights_stored"] = smallest(stored[k])
        if pr["delays"] is not None:
            if not np.array_equal(delays_back[k], pr["delays"]):
                raise RuntimeError(f"{case['name']}: delays of projection {k} changed")
            out[f"proj.{k}.delays"] = smallest(pr["delays"]).astype(np.uint8)
            out[f"proj.{k}.max_delay"] = np.int16(int(pr["delays"].max()))
        out[f"proj.{k}.a_out"] = smallest(data[(k, "a_out")])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    parser.add_argument("--only", nargs="*", help="case names to (re)generate")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--format", action="store_true", help="print the file format and exit")
    args = parser.parse_args(argv)
    if args.format:
        print(FORMAT)
        return 0
    cases = build_cases()
    names = [c["name"] for c in cases]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate case names")
    if args.list:
        for c in cases:
            print(f"{c['name']:28s} {c['category']:12s} {c['description']}")
        return 0
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            raise SystemExit(f"unknown cases: {sorted(unknown)}")
        cases = [c for c in cases if c["name"] in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for c in cases:
        data = run_case(c)
        path = args.out / f"{c['name']}.npz"
        np.savez_compressed(path, **data)
        total += path.stat().st_size
        spikes = sum(int(data[f"pop.{p}.spikes"].sum()) for p in data["populations"])
        print(
            f"{c['name']:28s} T={int(data['n_steps']):3d} spikes={spikes:5d} "
            f"{path.stat().st_size:7d} B",
            flush=True,
        )
    print(f"{len(cases)} case(s), {total} bytes written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
