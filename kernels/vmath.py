"""Vectorisable transcendental functions for numba-generated kernels.

numba from PyPI has no SVML, so ``np.exp`` and friends inside a ``prange`` loop are scalar
libm calls and stop LLVM from vectorising the loop. The functions here are written in plain
arithmetic that LLVM can turn into SIMD code: range reduction, a polynomial evaluated with
``fma``, ``2**k`` built from integer bits, and special values handled by selects (blends)
instead of branches. Every function exists for float64 and float32; the float32 versions
compute in float32 with shorter polynomials (except ``pow_f32``, see its docstring).

Generated kernel source imports them by name::

    from kernels.vmath import exp_f64
    y[i] = exp_f64(x[i])

``VMATH[prim][dtype]`` gives the function and ``VMATH_SOURCE_NAMES[prim][dtype]`` its name.

Why the helpers are LLVM intrinsics rather than Python operators: the functions are
``inline="always"``, so numba inlines their IR into the caller and compiles it under the
*caller's* flags. A caller with numba's default ``error_model="python"`` would turn ``a / b``
into a branch that raises ZeroDivisionError, and ``a if c else b`` is a branch that the
vectoriser may or may not flatten. ``div``, ``sel``, ``fma`` and the bit casts below emit
exactly one LLVM instruction each, whatever the caller's flags.

Bounds and fallbacks: sin/cos/tan reduce by pi/2 in float64 for both dtypes (float32 inputs
are widened, so a float32 argument is reduced as exactly as a float64 one); that is exact
enough for |x| <= 2**40 (about 1.1e12), and beyond it they return NaN rather than noise
(README lists this under what is missing). A libm fallback for those lanes would be a branch
in the loop, which stops its vectorisation (17x slower, measured). pow_f32 evaluates in float64.

Accuracy (measured by tests/test_vmath.py against numpy, in ulp of the result dtype) is
stated in each docstring. Polynomial coefficients are Chebyshev fits computed with mpmath
at 50 digits on the reduced interval named beside each table entry.
"""

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_JIT = dict(inline="always", fastmath=False, nogil=True, error_model="numpy")


# ---------------------------------------------------------------------------------------------
# One-instruction helpers
# ---------------------------------------------------------------------------------------------


def _float_pair(*tys):
    """The common float type of ``tys``, or None when they are not one float type."""
    t = tys[0]
    if isinstance(t, types.Float) and all(u == t for u in tys):
        return t
    return None


@intrinsic
def fma(typingctx, a, b, c):
    """``a*b + c`` rounded once (``llvm.fma``); becomes a vector FMA in SIMD loops."""
    t = _float_pair(a, b, c)
    if t is None:
        return None

    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    return t(t, t, t), codegen


@intrinsic
def div(typingctx, a, b):
    """IEEE ``a / b`` (inf/NaN on zero divisors), never a ZeroDivisionError branch."""
    t = _float_pair(a, b)
    if t is None:
        return None

    def codegen(context, builder, sig, args):
        return builder.fdiv(*args)

    return t(t, t), codegen


@intrinsic
def sel(typingctx, c, a, b):
    """``a if c else b`` as an LLVM ``select`` (a blend in SIMD code); both sides are computed."""
    if not isinstance(c, types.Boolean) or a != b:
        return None

    def codegen(context, builder, sig, args):
        return builder.select(*args)

    return a(c, a, b), codegen


@intrinsic
def copysign(typingctx, a, b):
    """``|a|`` with the sign bit of ``b`` (``llvm.copysign``)."""
    t = _float_pair(a, b)
    if t is None:
        return None

    def codegen(context, builder, sig, args):
        lty = args[0].type
        name = "llvm.copysign.f64" if lty == ir.DoubleType() else "llvm.copysign.f32"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lty, [lty, lty]), name)
        return builder.call(fn, args)

    return t(t, t), codegen


@intrinsic
def bits(typingctx, x):
    """The IEEE bit pattern of ``x``: float64 -> int64, float32 -> int32."""
    rt = {types.float64: types.int64, types.float32: types.int32}.get(x)
    if rt is None:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(rt))

    return rt(x), codegen


def _from_bits(ity, fty):
    """An intrinsic reinterpreting an integer (truncated to ``ity``) as a float of ``fty``."""

    @intrinsic
    def from_bits(typingctx, i):
        if not isinstance(i, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            v = args[0]
            width = context.get_value_type(ity).width
            if v.type.width > width:
                v = builder.trunc(v, ir.IntType(width))
            elif v.type.width < width:
                v = builder.sext(v, ir.IntType(width))
            return builder.bitcast(v, context.get_value_type(fty))

        return fty(i), codegen

    return from_bits


f64_from_bits = _from_bits(types.int64, types.float64)
f32_from_bits = _from_bits(types.int32, types.float32)


# ---------------------------------------------------------------------------------------------
# Polynomials
# ---------------------------------------------------------------------------------------------


def _horner(coefs, F):
    """A jitted ``p(x) = c0 + x*(c1 + x*(...))`` in fma steps, coefficients frozen as ``F``."""
    ns = {"fma": fma}
    ns.update({f"c{i}": F(c) for i, c in enumerate(coefs)})
    expr = f"c{len(coefs) - 1}"
    for i in range(len(coefs) - 2, -1, -1):
        expr = f"fma({expr}, x, c{i})"
    exec(f"def p(x):\n    return {expr}\n", ns)
    return numba.njit(**_JIT)(ns["p"])


def _piecewise_horner(rows, F):
    """A jitted ``p(x, b1, b2, ...)``: Horner in ``x`` with the coefficients of row ``j``
    chosen by selects, where row ``j`` applies when ``b_j`` is the last true flag.

    Selecting coefficients (blends) keeps the loop vectorisable without table gathers.
    """
    ns = {"fma": fma, "sel": sel}
    for j, row in enumerate(rows):
        ns.update({f"c{j}_{i}": F(c) for i, c in enumerate(row)})
    flags = [f"b{j}" for j in range(1, len(rows))]

    def coef(i):
        e = f"c0_{i}"
        for j in range(1, len(rows)):
            e = f"sel(b{j}, c{j}_{i}, {e})"
        return e

    n = len(rows[0])
    lines = [f"def p(x, {', '.join(flags)}):", f"    acc = {coef(n - 1)}"]
    lines += [f"    acc = fma(acc, x, {coef(i)})" for i in range(n - 2, -1, -1)]
    exec("\n".join(lines + ["    return acc", ""]), ns)
    return numba.njit(**_JIT)(ns["p"])


# ---------------------------------------------------------------------------------------------
# Constants per dtype
# ---------------------------------------------------------------------------------------------

_CONST = {
    "float64": dict(
        F=np.float64,
        from_bits=f64_from_bits,
        mant=52,
        bias=1023,
        magic=6755399441055744.0,
        # exp: clamp so that 2**k stays representable as two factors; beyond, inf or 0
        exp_hi=710.0,
        exp_lo=-746.0,
        expm1_lo=-40.0,
        expm1_bigk=1000.0,
        ln2=0.6931471805599453,
        ln2_tail=2.3190468138462996e-17,
        inv_ln2=1.4426950408889634,
        # log: ln2 split with a short head so that k*head is exact for any exponent k
        ln2_head=6.93147180369123816490e-01,
        ln2_lead_tail=1.90821492927058770002e-10,
        tiny=2.2250738585072014e-308,
        sub_scale=18014398509481984.0,
        sub_k=54,
        sqrt_half_bits=0x3FE6A09E667F3BCD,
        two_over_pi=0.6366197723675814,
        pio2_1=1.5707963267948966,
        pio2_2=6.123233995736766e-17,
        pio2_3=-1.497384905065873e-33,
        # sin/cos/tan: beyond this |x| the 3-part reduction is not accurate (see docstring)
        trig_max=2.0**40,
        tanh_clamp=20.0,
        hyp_big=22.0,
        tan_pi8=0.41421356237309503,
        tan_3pi8=2.414213562373095,
        pio4_hi=0.7853981633974483,
        pio4_lo=3.061616997868383e-17,
        erf_one=6.0,
        erf_edges=(2.0, 3.0, 4.0),
        inf=np.inf,
        nan=np.nan,
    ),
    "float32": dict(
        F=np.float32,
        from_bits=f32_from_bits,
        mant=23,
        bias=127,
        magic=12582912.0,
        exp_hi=89.0,
        exp_lo=-104.0,
        expm1_lo=-18.0,
        expm1_bigk=120.0,
        ln2=0.6931471824645996,
        ln2_tail=-1.9046542121259336e-09,
        inv_ln2=1.4426950216293335,
        ln2_head=0.693145751953125,
        ln2_lead_tail=1.428606765330187e-06,
        tiny=1.1754943508222875e-38,
        sub_scale=33554432.0,
        sub_k=25,
        sqrt_half_bits=0x3F3504F3,
        trig_max=2.0**40,  # reduced in float64
        tanh_clamp=10.0,
        hyp_big=9.0,
        tan_pi8=0.41421356237309503,
        tan_3pi8=2.414213562373095,
        # head with 3 trailing zero bits so that m*head is exact for m <= 4 (atan2)
        pio4_hi=0.785398006439209,
        pio4_lo=1.5695823663008923e-07,
        erf_one=4.0,
        erf_edges=(2.0, 3.0),
        inf=np.inf,
        nan=np.nan,
    ),
}

_POLY = {
    "exp64": (
        0.5,
        0.1666666666666667,
        0.04166666666666667,
        0.008333333333324906,
        0.001388888888888287,
        0.00019841269879033045,
        2.4801587328555858e-05,
        2.755725016302918e-06,
        2.7557269903215795e-07,
        2.5107353767261877e-08,
        2.0916212837493853e-09,
    ),
    "exp32": (
        0.5,
        0.1666657,
        0.041666545,
        0.00836438,
        0.0013927685,
    ),
    "log64": (
        0.666666666666667,
        0.39999999999886326,
        0.2857142863189178,
        0.22222210178871102,
        0.18182958064473362,
        0.15329453301676046,
        0.1464420352348317,
    ),
    "log32": (
        0.66666687,
        0.3998831,
        0.2960113,
    ),
    "sin64": (
        -0.16666666666666666,
        0.008333333333330925,
        -0.00019841269836722418,
        2.755731608381636e-06,
        -2.5051127944014188e-08,
        1.5917848524808262e-10,
    ),
    "sin32": (
        -0.16666667,
        0.008333332,
        -0.00019840083,
        2.7249314e-06,
    ),
    "cos64": (
        0.041666666666666664,
        -0.0013888888888887382,
        2.480158729874307e-05,
        -2.7557317260008837e-07,
        2.0876143827993133e-09,
        -1.1382456778061306e-11,
    ),
    "cos32": (
        0.041666664,
        -0.00138883,
        2.4547437e-05,
    ),
    "atan64": (
        -0.3333333333333333,
        0.19999999999995438,
        -0.14285714284649173,
        0.11111111013860688,
        -0.0909090452147169,
        0.07692181876036845,
        -0.06664492945806264,
        0.05857988350245762,
        -0.05084610357631765,
        0.03920743321261196,
        -0.019147248964611764,
    ),
    "atan32": (
        -0.3333333,
        0.19999537,
        -0.14263839,
        0.10742467,
        -0.064477414,
    ),
    "erf64": (
        1.1283791670955126,
        -0.37612638903183543,
        0.11283791670944997,
        -0.026866170643236143,
        0.00522397760710251,
        -0.0008548325974698299,
        0.00012055294883501286,
        -1.492473648590296e-05,
        1.6447419370488171e-06,
        -1.6208442020927564e-07,
        1.3719880012236024e-08,
        -7.795547647493875e-10,
    ),
    "erf32": (
        1.1283791,
        -0.37612626,
        0.11283594,
        -0.026854208,
        0.005189078,
        -0.00080167735,
        7.875546e-05,
    ),
}

# pow: Q(z) = ((2*atanh(s) - 2*s)/s**3 - 2/3)/z, z = s**2 in [0, 0.03]
_POLY["logdd64"] = (
    0.4,
    0.28571428571429486,
    0.2222222222158182,
    0.18181818352011497,
    0.1538459320489866,
    0.1333489931751719,
    0.1170372803580376,
    0.11749143968552968,
)
TWO_THIRDS, TWO_THIRDS_LO = 0.6666666666666666, 3.700743415417188e-17

_ERFC64 = (
    (
        1.5,
        0.033894853524689274,
        -0.11893028922362939,
        0.17839543383544407,
        -0.13875200409423133,
        0.044598858458861204,
        0.014866286152746044,
        -0.01932617199885317,
        0.004743053207835929,
        0.0023626776211650162,
        -0.0017098196672546224,
        9.291428106724173e-05,
        0.0002544495759217921,
        -7.768994601400183e-05,
        -1.7962605539251335e-05,
        1.4091941667864247e-05,
        -5.683602380200433e-07,
        -1.5308229035011648e-06,
        2.8070456752601277e-07,
        1.0105765937126117e-07,
    ),
    (
        2.5,
        0.0004069520174449589,
        -0.002178284230352711,
        0.005445710575881774,
        -0.008350089549685143,
        0.008622375078479554,
        -0.006117348213591158,
        0.002798490157044802,
        -0.0005424100607727855,
        -0.00026067017371749743,
        0.0002502853766461842,
        -7.880133198378731e-05,
        -5.1369055449073354e-06,
        1.4080045159285161e-05,
        -4.691556842554845e-06,
        -1.8156125279472354e-07,
        6.435349640190984e-07,
        -1.7852808109224318e-07,
        -2.2773907846030447e-08,
        2.235877045347101e-08,
    ),
    (
        3.5,
        7.430983723414128e-07,
        -5.3994267773847355e-06,
        1.8897993720846707e-05,
        -4.229550975619207e-05,
        6.771781083304169e-05,
        -8.211628223860076e-05,
        7.774424638995245e-05,
        -5.8192750644510994e-05,
        3.425917543940642e-05,
        -1.533076782652919e-05,
        4.641017414717e-06,
        -4.447081621569671e-07,
        -4.437709850001841e-07,
        3.016968522846118e-07,
        -9.233379173032939e-08,
        5.633672765938819e-09,
        8.330719216586603e-09,
        -3.846476099701903e-09,
        5.685303162382253e-10,
    ),
    (
        5.0,
        1.537459794428035e-12,
        -1.567083235868024e-11,
        7.835431537902453e-11,
        -2.55959531864374e-10,
        6.137766414818134e-10,
        -1.150728188586791e-09,
        1.7542482571431766e-09,
        -2.232386753526852e-09,
        2.4143601563793546e-09,
        -2.2472336947021256e-09,
        1.818622418850442e-09,
        -1.2889300603582071e-09,
        7.975454879754835e-10,
        -4.2651555246431505e-10,
        2.0045518443759533e-10,
        -8.561653808320866e-11,
        2.963888573754307e-11,
        -5.5877895018633646e-12,
        9.015467204317762e-14,
    ),
)
_ERFC32 = (
    (
        1.5,
        0.033894853615875624,
        -0.11893028875994793,
        0.17839541546606563,
        -0.13875209686532508,
        0.044599468498182596,
        0.01486926067382483,
        -0.019333558749802502,
        0.004709593935184524,
        0.0024021882670341764,
        -0.0015553907845944762,
    ),
    (
        2.5,
        0.0004069518838121495,
        -0.0021782842454354076,
        0.005445737328999964,
        -0.008350086541338056,
        0.00862151451669042,
        -0.006117443103189499,
        0.00280823902650405,
        -0.000541381603941271,
        -0.00030636597472052853,
        0.00024593799388214076,
    ),
    (
        3.5,
        7.431066520331535e-07,
        -5.399427263846154e-06,
        1.8896336830129245e-05,
        -4.229541188361464e-05,
        6.777099116813883e-05,
        -8.211951164433406e-05,
        7.714469612021704e-05,
        -5.815416844702919e-05,
        3.70394655480234e-05,
        -1.5531726095905007e-05,
    ),
)


# ---------------------------------------------------------------------------------------------
# The functions, written once and built per dtype
# ---------------------------------------------------------------------------------------------


def _build(dt):  # noqa: C901 - one closure per function, read top to bottom
    """Build every function for dtype name ``dt``; returns ``{prim: jitted function}``."""
    c = _CONST[dt]
    F, from_bits, suffix = c["F"], c["from_bits"], "64" if dt == "float64" else "32"
    k = {n: F(v) for n, v in c.items() if isinstance(v, float)}
    mant, bias, sqrt_half_bits, sub_k = c["mant"], c["bias"], c["sqrt_half_bits"], c["sub_k"]
    magic_bits = int(
        np.array([c["magic"]], dtype=F).view(np.int64 if F is np.float64 else np.int32)[0]
    )
    one, two, half, zero, inf, nan = F(1), F(2), F(0.5), F(0), F(np.inf), F(np.nan)
    # closures freeze plain names as compile-time constants (dict lookups would not compile)
    magic, inv_ln2, ln2, ln2_tail, ln2_head, ln2_lead_tail = (
        k[n] for n in ("magic", "inv_ln2", "ln2", "ln2_tail", "ln2_head", "ln2_lead_tail")
    )
    exp_hi, exp_lo, expm1_lo, expm1_bigk, tiny, sub_scale = (
        k[n] for n in ("exp_hi", "exp_lo", "expm1_lo", "expm1_bigk", "tiny", "sub_scale")
    )
    trig_max = k["trig_max"]
    # the trig reduction runs in float64 for both dtypes
    D_two_over_pi, D_pio2_1, D_pio2_2, D_pio2_3, D_magic = (
        np.float64(_CONST["float64"][n])
        for n in ("two_over_pi", "pio2_1", "pio2_2", "pio2_3", "magic")
    )
    tanh_clamp, hyp_big, tan_pi8, tan_3pi8, pio4_hi, pio4_lo, erf_one = (
        k[n]
        for n in ("tanh_clamp", "hyp_big", "tan_pi8", "tan_3pi8", "pio4_hi", "pio4_lo", "erf_one")
    )
    p_logdd = _horner(_POLY["logdd64"], F)  # pow's log, float64 only
    p_exp, p_log, p_sin, p_cos, p_atan, p_erf = (
        _horner(_POLY[n + suffix], F) for n in ("exp", "log", "sin", "cos", "atan", "erf")
    )
    erf_edges = c["erf_edges"]
    erfc_rows = _ERFC64 if dt == "float64" else _ERFC32
    erfc_poly = _piecewise_horner([r[1:] for r in erfc_rows], F)
    jit = numba.njit(**_JIT)

    @jit
    def pow2(kf):
        # 2**kf for an integral float kf in the normal exponent range: adding the magic
        # constant puts kf in the low mantissa bits, and the shift discards the magic's own bits.
        return from_bits((bits(kf + magic) + bias) << mant)

    @jit
    def rint(x):
        # round to nearest integer, valid for |x| < 2**(mant - 1); NaN/inf pass through
        return (x + magic) - magic

    @jit
    def exp_reduce(x):
        """x = k*ln2 + r, |r| <= ln2/2, for x already clamped to the exp range."""
        kf = rint(x * inv_ln2)
        r = fma(-kf, ln2, x)  # exact: k*ln2 and x share the grid of ulp(ln2)
        return kf, fma(-kf, ln2_tail, r)

    @jit
    def expm1_small(r):
        """expm1(r) for |r| <= ln2/2; r + r*(r*q) keeps the sign of a zero r."""
        return fma(r, r * p_exp(r), r)

    @jit
    def exp_dd(x, lo):
        """exp(x + lo) for a tail |lo| << ulp(x); inf above the overflow bound, 0 below."""
        xc = sel(x > exp_hi, exp_hi, sel(x < exp_lo, exp_lo, x))
        lo = sel(xc == x, lo, zero)
        kf, r = exp_reduce(xc)
        p = one + expm1_small(r + lo)
        # two factors so that subnormal results and k = 2**mant's top (k = bias + 1) work
        k1 = rint(kf * half)
        return (p * pow2(k1)) * pow2(kf - k1)

    @jit
    def exp(x):
        """e**x: k = rint(x/ln2), r = x - k*ln2 (fma Cody-Waite), 1 + r + r**2*q(r), times 2**k."""
        return exp_dd(x, zero)

    @jit
    def expm1(x):
        """e**x - 1 without cancellation near 0: 2**k*expm1(r) + (2**k - 1)."""
        xc = sel(x > exp_hi, exp_hi, sel(x < expm1_lo, expm1_lo, x))
        kf, r = exp_reduce(xc)
        u = expm1_small(r)
        k1 = rint(kf * half)
        s1, s2 = pow2(k1), pow2(kf - k1)
        s = s1 * s2
        # 2**k*u + (2**k - 1) is exact-ish and cancellation-free for moderate k; near
        # overflow 2**k itself overflows, where the -1 no longer matters
        near = fma(s, u, s - one)
        far = ((u + one) * s1) * s2
        return sel(x == zero, x, sel(kf > expm1_bigk, far, near))

    @jit
    def log_reduce(x):
        """x = 2**k * (1 + f), sqrt(1/2) <= 1 + f < sqrt(2), for finite x > 0."""
        sub = x < tiny
        xs = sel(sub, x * sub_scale, x)
        ix = bits(xs)
        tmp = ix - sqrt_half_bits
        ki = (tmp >> mant) - sel(sub, sub_k, 0)
        m = from_bits(ix - (tmp & (-1 << mant)))
        # int -> float through the magic constant: vector int64 -> double needs AVX-512
        kf = from_bits(ki + magic_bits) - magic
        return m - one, kf

    @jit
    def log_kernel(f, kf, corr):
        """k*ln2 + log(1 + f) + corr, with f = m - 1 and log(1+f) = 2*atanh(f/(2+f))."""
        s = div(f, two + f)
        z = s * s
        hfsq = half * f * f
        r = z * p_log(z)
        tail = fma(s, hfsq + r, fma(kf, ln2_lead_tail, corr))
        return fma(kf, ln2_head, f - (hfsq - tail))

    @jit
    def log(x):
        """Natural log; log(0) = -inf, log(x < 0) = NaN, subnormals scaled first."""
        f, kf = log_reduce(x)
        res = log_kernel(f, kf, zero)
        special = sel(x == zero, -inf, sel(x < zero, nan, x + x))
        return sel((x > zero) & (x < inf), res, special)

    @jit
    def log1p(x):
        """log(1 + x), accurate near 0 through the rounding error of 1 + x."""
        u = one + x
        # the rounding error of 1 + x, exact because u - 1 is exact
        corr = div(x - (u - one), u)
        f, kf = log_reduce(u)
        res = log_kernel(f, kf, corr)
        special = sel(x == -one, -inf, sel(x < -one, nan, x + x))
        return sel(x == zero, x, sel((x > -one) & (x < inf), res, special))

    @jit
    def trig_reduce64(x):
        """x = q*pi/2 + r, |r| <= pi/4 (slightly more at rounding ties); q as an integer."""
        t = fma(x, D_two_over_pi, D_magic)
        kf = t - D_magic
        r = fma(-kf, D_pio2_1, x)  # exact (Cody-Waite with fma)
        r = fma(-kf, D_pio2_3, fma(-kf, D_pio2_2, r))
        return kf, r, bits(t)

    @jit
    def trig_reduce(x):
        """trig_reduce64 in the input's precision; float32 is reduced in float64 (exact for
        |x| <= 2**40 too, where float32 constants would stop at 2**17) and rounded once."""
        kf, r, q = trig_reduce64(numba.float64(x))
        # for k = 0, r is x itself; the select keeps the sign of x = -0 (-0 + +0 = +0)
        return sel(kf == 0.0, x, F(r)), q

    @jit
    def sincos_poly(r):
        z = r * r
        # z == 0: sin(r) = r, and the select keeps the sign of r = -0
        s = sel(z == zero, r, fma(r * z, p_sin(z), r))
        hz = half * z
        w = one - hz
        # (1 - w) - hz recovers the rounding error of 1 - hz
        cs = w + fma(z * z, p_cos(z), (one - w) - hz)
        return s, cs

    @jit
    def trig_valid(x, res):
        return sel(abs(x) <= trig_max, res, nan)

    @jit
    def sin(x):
        """sin, 3-part Cody-Waite reduction by pi/2 with fma; NaN beyond |x| > trig_max."""
        r, q = trig_reduce(x)
        s, cs = sincos_poly(r)
        v = sel((q & 1) == 1, cs, s)
        return trig_valid(x, sel((q & 2) == 2, -v, v))

    @jit
    def cos(x):
        """cos, same reduction as sin; NaN beyond |x| > trig_max."""
        r, q = trig_reduce(x)
        s, cs = sincos_poly(r)
        v = sel((q & 1) == 1, s, cs)
        return trig_valid(x, sel(((q + 1) & 2) == 2, -v, v))

    @jit
    def tan(x):
        """tan = sin(r)/cos(r) or -cos(r)/sin(r) by quadrant; NaN beyond |x| > trig_max."""
        r, q = trig_reduce(x)
        s, cs = sincos_poly(r)
        odd = (q & 1) == 1
        return trig_valid(x, div(sel(odd, -cs, s), sel(odd, s, cs)))

    @jit
    def tanh(x):
        """tanh = u/(u + 2) with u = expm1(2|x|), sign restored."""
        a = abs(x)
        a = sel(a > tanh_clamp, tanh_clamp, a)  # tanh is 1 to working precision
        u = expm1(a + a)
        return copysign(div(u, u + two), x)

    @jit
    def sinh(x):
        """sinh = (u + u/(u + 1))/2, u = expm1(|x|); e**(|x|/2)**2/2 for large |x|."""
        a = abs(x)
        big = a > hyp_big
        # for large |x|, sinh = e**(|x|/2) * e**(|x|/2) / 2 avoids overflowing too early
        u = expm1(sel(big, half * a, a))
        small = half * (u + div(u, u + one))
        w = u + one
        return copysign(sel(big, (half * w) * w, small), x)

    @jit
    def cosh(x):
        """cosh = (e + 1/e)/2, e = exp(|x|); e**(|x|/2)**2/2 for large |x|."""
        a = abs(x)
        big = a > hyp_big
        e = exp(sel(big, half * a, a))
        return sel(big, (half * e) * e, half * e + div(half, e))

    if len(erfc_rows) == 4:
        e1, e2, e3 = (F(v) for v in erf_edges)
        m0, m1, m2, m3 = (F(r[0]) for r in erfc_rows)

        @jit
        def erfc_mid(a):
            """erfc(a) for 1 <= a < erf_one: polynomial in a - midpoint of a's interval."""
            b1, b2, b3 = a >= e1, a >= e2, a >= e3
            mid = sel(b3, m3, sel(b2, m2, sel(b1, m1, m0)))
            return erfc_poly(a - mid, b1, b2, b3)
    else:
        e1, e2 = (F(v) for v in erf_edges)
        m0, m1, m2 = (F(r[0]) for r in erfc_rows)

        @jit
        def erfc_mid(a):
            """erfc(a) for 1 <= a < erf_one: polynomial in a - midpoint of a's interval."""
            b1, b2 = a >= e1, a >= e2
            return erfc_poly(a - sel(b2, m2, sel(b1, m1, m0)), b1, b2)

    @jit
    def erf(x):
        """erf: x*P(x**2) below 1, 1 - erfc by piecewise polynomials (selected coefficients)."""
        a = abs(x)
        small = a * p_erf(a * a)
        res = sel(a >= erf_one, one, sel(a >= one, one - erfc_mid(a), small))
        return copysign(res, x)

    @jit
    def atan_reduced(t):
        """atan(t) for |t| <= tan(pi/8)."""
        z = t * t
        return fma(t * z, p_atan(z), t)

    @jit
    def arctan(x):
        """arctan: reduce to |t| <= tan(pi/8) around 0, pi/4 or pi/2 with one division."""
        a = abs(x)
        mid, far = a > tan_pi8, a > tan_3pi8
        # atan(a) = m*pi/4 + atan(t): t = a, (a-1)/(a+1) or -1/a; one division for all three
        t = div(sel(far, -one, sel(mid, a - one, a)), sel(far, a, sel(mid, a + one, one)))
        m = sel(far, two, sel(mid, one, zero))
        return copysign(fma(m, pio4_hi, fma(m, pio4_lo, atan_reduced(t))), x)

    @jit
    def arctan2(y, x):
        """atan2 with C99 signed-zero/infinity cases, NaN if either input is NaN."""
        ay, ax = abs(y), abs(x)
        swap = ay > ax
        num, den = sel(swap, ax, ay), sel(swap, ay, ax)
        # 0/0 and inf/inf: the limits atan2 takes for equal magnitudes
        r = sel(ax == ay, sel(ax == zero, zero, one), div(num, den))
        mid = r > tan_pi8
        t = sel(mid, div(r - one, r + one), r)
        # angle = m*pi/4 + s*atan(t), folding in pi/2 - . (swap) and pi - . (x < 0)
        m, s = sel(mid, one, zero), one
        m, s = sel(swap, two - m, m), sel(swap, -s, s)
        xneg = bits(x) < 0
        m, s = sel(xneg, F(4) - m, m), sel(xneg, -s, s)
        res = copysign(fma(m, pio4_hi, fma(m, pio4_lo, s * atan_reduced(t))), y)
        return sel((x != x) | (y != y), x + y, res)

    @jit
    def two_sum(a, b):
        """a + b = s + e exactly (Knuth)."""
        t = a + b
        bb = t - a
        return t, (a - (t - bb)) + (b - bb)

    @jit
    def log_dd(a):
        """log(a) as hi + lo with about 2**-64 relative error, for finite a > 0.

        pow needs it: an error e in log(x) becomes a relative error |y|*e in x**y, and
        |y*log(x)| reaches 745. log(1+f) = 2s + (2/3)s**3 + s**5*Q(s**2), s = f/(2+f);
        the first two terms are carried in double-double, the rest is small enough.
        """
        f, kf = log_reduce(a)
        den = two + f
        den_lo = (two - den) + f  # exact: Fast2Sum with |f| < 2
        s = div(f, den)
        s_lo = div(fma(-s, den, f) - s * den_lo, den)  # f/den - s, to first order
        z = s * s
        z_lo = fma(s, s, -z)
        s3 = s * z
        s3_lo = fma(s, z, -s3) + s * z_lo
        t = TWO_THIRDS * s3
        t_lo = fma(TWO_THIRDS, s3, -t) + fma(TWO_THIRDS, s3_lo, TWO_THIRDS_LO * s3)
        rest = s3 * z * p_logdd(z)
        head = kf * ln2_head  # exact: ln2_head has trailing zero bits
        h1, e1 = two_sum(head, s + s)
        h2, e2 = two_sum(h1, t)
        # d(2*atanh(s))/ds = 2/(1 - s**2): s_lo enters as 2*s_lo*(1 + z)
        ds = fma(s_lo + s_lo, z, s_lo + s_lo)
        lo = (e1 + e2) + (ds + (t_lo + rest) + kf * ln2_lead_tail)
        h = h2 + lo
        return h, lo - (h - h2)

    @jit
    def power(x, y):
        """x**y = exp(y*log x) with log in double-double; C99 special cases, odd integer y."""
        ax = abs(x)
        lh, ll = log_dd(ax)
        yh = y * lh
        yl = fma(y, lh, -yh) + y * ll
        res = exp_dd(yh, sel(yh - yh == zero, yl, zero))  # tails of infinities are NaN
        # x**y for x <= 0 and y finite: nan unless y is an integer, odd y keeps the sign
        y_int = rint(y) == y
        hy = half * y
        odd = y_int & (rint(hy) != hy) & (abs(y) < magic)
        res = sel(
            ax == zero, sel(y < zero, inf, zero), sel(ax == inf, sel(y < zero, zero, inf), res)
        )
        res = sel(
            bits(x) < 0, sel(odd, -res, sel(y_int | (ax == inf) | (ax == zero), res, nan)), res
        )
        res = sel((x != x) | (y != y), x + y, res)
        # C99: pow(1, y) = 1 and pow(x, 0) = 1 even for NaN; pow(-1, +-inf) = 1
        res = sel((ax == one) & (abs(y) == inf), one, res)
        return sel((x == one) | (y == zero), one, res)

    return locals()


def _pow_f32(pow64):
    """float32 pow through the float64 one: an f32 log/exp pair would lose about
    |y*log(x)| * 2**-24 relative, so the product needs the wider type (as glibc's powf does)."""

    @numba.njit(**_JIT)
    def power(x, y):
        """x**y for float32 through the float64 pow, rounded once to float32."""
        return np.float32(pow64(np.float64(x), np.float64(y)))

    return power


_F64 = _build("float64")
_F32 = _build("float32")
_F32["power"] = _pow_f32(_F64["power"])

# primitive name -> function name in this module's _build (numpy spellings)
_PRIMS = {
    "exp": "exp",
    "expm1": "expm1",
    "log": "log",
    "log1p": "log1p",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "tanh": "tanh",
    "sinh": "sinh",
    "cosh": "cosh",
    "erf": "erf",
    "arctan": "arctan",
    "arctan2": "arctan2",
    "power": "power",
}

#: Max error in ulp measured by tests/test_vmath.py-style sampling (6000+ points per sampler,
#: mpmath reference): float64 against the correctly rounded result, float32 against the exact
#: one. Only pow_f32 computes in float64 (see _pow_f32).
MAX_ULP = {
    "exp": (1, 0.96),
    "expm1": (2, 1.62),
    "log": (1, 0.75),
    "log1p": (1, 0.75),
    "sin": (1, 1.33),
    "cos": (1, 1.17),
    "tan": (2, 2.59),
    "tanh": (2, 1.8),
    "sinh": (3, 3.15),
    "cosh": (2, 2.69),
    "erf": (1, 2.2),
    "arctan": (1, 1.71),
    "arctan2": (2, 1.73),
    "power": (1, 0.5),
}

# other spellings a primitive table may use
_ALIASES = {"atan": "arctan", "atan2": "arctan2", "pow": "power"}

#: VMATH[prim][dtype] -> scalar numba function (inline="always"), e.g. VMATH["exp"]["float32"]
VMATH = {p: {"float64": _F64[n], "float32": _F32[n]} for p, n in _PRIMS.items()}

#: VMATH_SOURCE_NAMES[prim][dtype] -> the name generated source imports from kernels.vmath
VMATH_SOURCE_NAMES = {p: {"float64": f"{p}_f64", "float32": f"{p}_f32"} for p in _PRIMS}

# module-level names so that generated code can write `from kernels.vmath import exp_f64`
for _p, _byd in VMATH.items():
    for _d, _fn in _byd.items():
        globals()[VMATH_SOURCE_NAMES[_p][_d]] = _fn
        _fn.__doc__ = (
            f"{_fn.py_func.__doc__}\n\n{_d}. Max error measured: "
            f"{MAX_ULP[_p][0 if _d == 'float64' else 1]} ulp."
        )
del _p, _byd, _d, _fn
for _a, _p in _ALIASES.items():
    VMATH[_a], VMATH_SOURCE_NAMES[_a] = VMATH[_p], VMATH_SOURCE_NAMES[_p]
del _a, _p


def _nan_propagating(name: str):
    """``llvm.maximum`` / ``llvm.minimum`` for one float type: NaN if either operand is NaN
    (as ``np.maximum``), and, unlike ``np.maximum`` in numba, a form the loop vectoriser
    reduces in SIMD registers (a kernel's max-reduction epilogue no longer makes its whole
    loop scalar). Signed zeros order as -0 < +0."""

    @intrinsic
    def op(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            t = args[0].type
            fn = builder.module.declare_intrinsic(f"llvm.{name}", [t], ir.FunctionType(t, [t, t]))
            return builder.call(fn, args)

        return a(a, b), codegen

    return op


#: NaN-propagating max and min of two floats of one type, vectorisable in reductions
fmaximum = _nan_propagating("maximum")
fminimum = _nan_propagating("minimum")
