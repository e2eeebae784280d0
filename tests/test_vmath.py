"""Accuracy of kernels.vmath against a correctly rounded reference, evaluated through a
numba ``prange`` loop as generated kernels call it.

The reference is mpmath at 40 digits on the same (exactly converted) inputs, so the error
measured is the function's own. Special values (signed zeros, infinities, NaN, subnormals,
overflow thresholds) are checked against numpy, except where numpy departs from C99
(noted at the case).
"""

import math

import mpmath as mp
import numba
import numpy as np
import pytest

from kernels.vmath import VMATH, VMATH_SOURCE_NAMES

mp.mp.dps = 40

# max error allowed, in ulp of the result dtype; each docstring states the measured value
TOL = {"float64": 4.0, "float32": 4.0}
N = 1000  # random points per sampler
TRIG_MAX = {"float64": 2.0**40, "float32": 2.0**40}  # reduction bound stated in kernels.vmath

_REF = {
    "exp": mp.exp,
    "expm1": mp.expm1,
    "log": mp.log,
    "log1p": mp.log1p,
    "sin": mp.sin,
    "cos": mp.cos,
    "tan": mp.tan,
    "tanh": mp.tanh,
    "sinh": mp.sinh,
    "cosh": mp.cosh,
    "erf": mp.erf,
    "arctan": mp.atan,
}
UNARY = sorted(_REF)
DTYPES = ["float64", "float32"]
_KERNELS = {}


def _kernel(fn, nargs):
    """A parallel kernel applying ``fn`` elementwise, as the CPU code generator prints it."""
    if nargs == 1:

        @numba.njit(parallel=True)
        def k1(x, out):
            for i in numba.prange(x.size):
                out[i] = fn(x[i])

        return k1

    @numba.njit(parallel=True)
    def k2(x, y, out):
        for i in numba.prange(x.size):
            out[i] = fn(x[i], y[i])

    return k2


def run(prim, dt, *args):
    """Evaluate VMATH[prim][dt] over arrays through a prange loop (kernels cached per test run)."""
    key = (prim, dt)
    if key not in _KERNELS:
        _KERNELS[key] = _kernel(VMATH[prim][dt], len(args))
    args = [np.ascontiguousarray(a, dtype=dt) for a in args]
    out = np.empty_like(args[0])
    _KERNELS[key](*args, out)
    return out


def ulp_error(got, ref, dt):
    """|got - ref| in ulp of ``ref`` rounded to ``dt``; inf/NaN must match exactly."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    with np.errstate(over="ignore"):
        r_dt = ref.astype(dt)
    special = ~np.isfinite(r_dt) | ~np.isfinite(got)
    same = (got == r_dt) | (np.isnan(got) & np.isnan(r_dt))
    err = np.zeros(ref.shape)
    fin = ~special
    err[fin] = np.abs(got[fin] - ref[fin]) / np.spacing(np.abs(r_dt[fin])).astype(np.float64)
    err[special & ~same] = np.inf
    return err


def _mp_ref(f, *xs):
    return np.array([float(f(*(mp.mpf(float(v)) for v in t))) for t in zip(*xs)])


def _loguniform(rng, dt, n, lo_exp=None, hi_exp=None, signed=True):
    """Magnitudes spread over the exponent range of ``dt`` (subnormals included)."""
    fi = np.finfo(dt)
    lo = np.log2(float(fi.smallest_subnormal)) if lo_exp is None else lo_exp
    hi = fi.maxexp if hi_exp is None else hi_exp
    x = np.exp2(rng.uniform(lo, hi, n))
    x = np.minimum(x, float(fi.max))
    if signed:
        x *= rng.choice([-1.0, 1.0], n)
    return x.astype(dt)


def samples(prim, dt, rng):
    """Log-uniform over the whole range plus uniform draws where the function is interesting."""
    f32 = dt == "float32"
    u = lambda a, b: rng.uniform(a, b, N).astype(dt)
    parts = [_loguniform(rng, dt, N)]
    if prim in ("exp", "expm1"):
        parts += [u(-104, 89) if f32 else u(-746, 710), u(-1, 1)]
    elif prim in ("log", "log1p"):
        parts += [_loguniform(rng, dt, N, signed=False), u(-1, 3), u(0.5, 2)]
    elif prim in ("sin", "cos", "tan"):
        parts += [u(-10, 10), _loguniform(rng, dt, N, -30, 17 if f32 else 40)]
    elif prim in ("tanh", "sinh", "cosh"):
        parts += [u(-12, 12) if f32 else u(-30, 30), u(-90, 90) if f32 else u(-712, 712)]
    elif prim == "erf":
        parts += [u(-7, 7), u(-1.5, 1.5)]
    else:
        parts += [u(-5, 5)]
    return np.concatenate(parts)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("prim", UNARY)
def test_unary_accuracy(prim, dt):
    rng = np.random.default_rng(abs(hash(prim)) % 2**32)
    x = samples(prim, dt, rng)
    if prim in ("sin", "cos", "tan"):  # documented bound, checked in test_trig_bound
        x = x[np.abs(x) <= TRIG_MAX[dt]]
    got = run(prim, dt, x)
    with np.errstate(all="ignore"):
        ok_dom = np.isfinite(x) & ~((x < 0) & (prim == "log")) & ~((x < -1) & (prim == "log1p"))
        ref = np.full(x.shape, np.nan)
        ref[ok_dom] = _mp_ref(_mp_guard(_REF[prim]), x[ok_dom])
    err = ulp_error(got, ref, dt)
    worst = np.argmax(err)
    assert err.max() <= TOL[dt], f"{prim} {dt}: {err.max():.2f} ulp at x={x[worst]!r}"


def _mp_guard(f):
    """mpmath reference that saturates like IEEE arithmetic (overflow -> inf)."""

    def g(v):
        try:
            r = f(v)
        except (ValueError, ZeroDivisionError):
            return mp.mpf("nan")
        if isinstance(r, mp.mpc):
            return mp.mpf("nan")
        return r if abs(r) < mp.mpf(2) ** 1024 else mp.inf * mp.sign(r)

    return g


SPECIALS = [
    0.0,
    -0.0,
    np.inf,
    -np.inf,
    np.nan,
    5e-324,
    -5e-324,
    1e-310,
    2.2250738585072014e-308,
    1e-30,
    -1e-30,
    0.5,
    -0.5,
    1.0,
    -1.0,
    2.0,
    1e300,
    -1e300,
    709.782712893384,
    709.7827128933841,
    710.0,
    -708.4,
    -745.1332191019411,
    -745.2,
    88.72283,
    88.7229,
    -87.33655,
    -103.97,
    -104.0,
    89.5,
    17.0,
    19.5,
    20.0,
    5.9,
    6.0,
    3.9,
    4.0,
    1e5,
    -1e5,
]
# multiples of pi/2: the hardest points for sin/cos/tan reduction
SPECIALS += [m * math.pi / 2 for m in (1, 2, 3, 4, 7, 100, 1001, 10**4, 6 * 10**4)]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("prim", UNARY)
def test_unary_special_values(prim, dt):
    with np.errstate(over="ignore"):
        x = np.array(SPECIALS, dtype=np.float64).astype(dt)
    if prim in ("sin", "cos", "tan"):  # documented bound, checked in test_trig_bound
        x = x[~(np.abs(x) > TRIG_MAX[dt])]
    got = run(prim, dt, x)
    with np.errstate(all="ignore"):
        ref = getattr(np, prim if prim != "erf" else "tanh")(x.astype(np.float64))
        if prim == "erf":
            ref = np.array([math.erf(v) for v in x.astype(np.float64)])
    err = ulp_error(got, ref, dt)
    worst = np.argmax(err)
    assert err.max() <= TOL[dt] + 1, f"{prim} {dt}: {err.max():.2f} ulp at x={x[worst]!r}"
    zero = x == 0
    # odd functions and log1p/expm1 keep the sign of zero; numpy does too
    assert np.array_equal(np.signbit(got[zero]), np.signbit(ref[zero].astype(dt)))


@pytest.mark.parametrize("dt", DTYPES)
def test_trig_bound(dt):
    """Beyond the documented reduction bound sin/cos/tan return NaN rather than noise."""
    big = np.array([2.0**41, 1e20, -1e300] if dt == "float64" else [2.0**41, 1e20, -3e38], dt)
    for prim in ("sin", "cos", "tan"):
        assert np.isnan(run(prim, dt, big)).all()


@pytest.mark.parametrize("prim", ["sin", "cos", "tan"])
def test_float32_trig_of_large_arguments(prim):
    """float32 arguments are reduced in float64: up to the bound 2**40 the result is numpy's
    (float32 constants alone gave NaN from 2**17 on, e.g. sin(exp(16)) in a fused chain)."""
    x = np.float32([1.5e5, -4.4e6, 8.9e6, 1e10, -2.0**40, 3.0e11])
    with np.errstate(all="ignore"):
        ref = getattr(np, prim)(x.astype(np.float64))
    assert ulp_error(run(prim, "float32", x), ref, "float32").max() <= TOL["float32"] + 1


def _c99_pow(x, y):
    """math.pow with C99 results where it raises (poles and overflow)."""
    odd = math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2) != 0
    inf = math.copysign(math.inf, x) if odd else math.inf
    if x == 0 and y < 0:
        return inf
    try:
        return math.pow(x, y)
    except OverflowError:
        return inf
    except ValueError:
        return math.nan


@pytest.mark.parametrize("dt", DTYPES)
def test_power_special_values(dt):
    """All C99 special cases (numpy's float power gives NaN for pow(-inf, 0.5); C99 says inf)."""
    vals = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.0,
        -2.0,
        0.5,
        -0.5,
        3.0,
        -3.0,
        1.5,
        -1.5,
        np.inf,
        -np.inf,
        np.nan,
        1e-310,
        1e300,
        -1e300,
        1e-40,
    ]
    x, y = (a.ravel().astype(dt) for a in np.meshgrid(vals, vals))
    got = run("power", dt, x, y)
    ref = np.array([_c99_pow(float(a), float(b)) for a, b in zip(x, y)])
    err = ulp_error(got, ref, dt)
    assert err.max() <= 1, (x[np.argmax(err)], y[np.argmax(err)])
    zero = ref == 0
    assert np.array_equal(np.signbit(got[zero]), np.signbit(ref[zero]))


@pytest.mark.parametrize("dt", DTYPES)
def test_power_accuracy(dt):
    rng = np.random.default_rng(7)
    x = np.concatenate(
        [
            _loguniform(rng, dt, N, signed=False),
            rng.uniform(0.5, 2, N).astype(dt),
            -rng.integers(1, 30, N).astype(dt),
        ]
    )
    big = 700.0 if dt == "float64" else 85.0
    y = np.concatenate(
        [
            rng.uniform(-3, 3, N),
            big / np.log(x[N : 2 * N].astype(np.float64)) * rng.uniform(-1, 1, N),
            rng.integers(-40, 40, N),
        ]
    ).astype(dt)
    got = run("power", dt, x, y)
    ref = np.array([_c99_pow(float(a), float(b)) for a, b in zip(x, y)])
    tol = 2.0 if dt == "float64" else 1.0
    err = ulp_error(got, ref, dt)
    assert err.max() <= tol, (x[np.argmax(err)], y[np.argmax(err)], err.max())


@pytest.mark.parametrize("dt", DTYPES)
def test_arctan2(dt):
    rng = np.random.default_rng(3)
    y = np.concatenate([_loguniform(rng, dt, N, -60, 60), rng.uniform(-3, 3, N).astype(dt)])
    x = np.concatenate([_loguniform(rng, dt, N, -60, 60), rng.uniform(-3, 3, N).astype(dt)])
    got = run("arctan2", dt, y, x)
    err = ulp_error(got, _mp_ref(mp.atan2, y, x), dt)
    assert err.max() <= TOL[dt], (y[np.argmax(err)], x[np.argmax(err)], err.max())
    s = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 5e-324], dt)
    yy, xx = (a.ravel() for a in np.meshgrid(s, s))
    got = run("arctan2", dt, yy, xx)
    ref = np.arctan2(yy.astype(np.float64), xx.astype(np.float64))
    assert ulp_error(got, ref, dt).max() <= 1
    assert np.array_equal(
        np.signbit(got),
        np.signbit(ref.astype(dt)) & ~np.isnan(ref) | np.signbit(got) & np.isnan(ref),
    )


def test_tables_are_consistent():
    import kernels.vmath as vm

    for prim, by_dt in VMATH.items():
        assert set(by_dt) == set(DTYPES)
        for dt, fn in by_dt.items():
            assert getattr(vm, VMATH_SOURCE_NAMES[prim][dt]) is fn


@pytest.mark.parametrize("prim", UNARY + ["arctan2", "power"])
def test_float32_stays_float32(prim):
    """The float32 versions compute in float32 (except pow, and the argument reduction of
    sin/cos/tan, documented): no double in the IR."""
    fn = VMATH[prim]["float32"]
    sig = (numba.float32,) * (2 if prim in ("arctan2", "power") else 1)
    fn.compile(sig)
    assert fn.nopython_signatures[-1].return_type == numba.float32
    if prim not in ("power", "sin", "cos", "tan"):
        blocks = fn.inspect_llvm(sig).split("\ndefine")[1:]
        own = [b for b in blocks if "cpython" not in b.split("(")[0]]  # not the boxing wrapper
        assert own and not any(" double" in b for b in own)
