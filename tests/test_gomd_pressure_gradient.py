"""GOMD's baroclinic pressure gradient: pom2k's second-order scheme and McCalpin's fourth-order
one (``pressure_gradient = "mccalpin"``).

Checks: a loop-by-loop reference of the McCalpin formulas; zero on a flat bottom; the classic
sigma-coordinate error test (a resting ocean with rho = rho(z) over the seamount); the order of
convergence against the exact gradient of an analytic density; the compiled step and
``sciml.grad`` with the option on.
"""

import dataclasses

import numpy as np
import pytest

import sciml
from cases.gomd import init_state, internal, load_config, make_params, step
from cases.gomd.__main__ import build_config, parse_args
from cases.gomd.compiled import CompiledStep
from cases.gomd.grid import sigma_levels
from cases.gomd.model import Params
from cases.gomd.regions import box

SCHEMES = ("second", "mccalpin")


def with_scheme(cfg, scheme):
    return dataclasses.replace(cfg, pressure_gradient=scheme)


# --- a plain-loop reference of McCalpin's formulas ------------------------------------------

def faces_loop(a, m, i, n):
    """Face value and difference at face i (between centres i-1 and i, 0-based) of the 1-D
    array ``a`` with face mask ``m``: the four-point stencils 9/16, -1/16 and 27/24, -1/24
    where both neighbours exist (faces 2..n-2), the two-point ones elsewhere."""
    if 2 <= i <= n - 2:
        # a land face next door drops its difference out of the four-point stencil
        dm, dp = m[i - 1] * (a[i - 1] - a[i - 2]), m[i + 1] * (a[i + 1] - a[i])
        value = 0.5 * (a[i] + a[i - 1]) + (dm - dp) / 16.0
        delta = (a[i] - a[i - 1]) - (dp - 2.0 * (a[i] - a[i - 1]) + dm) / 24.0
        return value, delta
    return 0.5 * (a[i] + a[i - 1]), a[i] - a[i - 1]


def drhox_loop(rp, dt, p, g):
    """x-component, one face at a time: the vertical sum of pom2k's baropg written out."""
    kb, (jm, im), zz = p["kb"], p["shape2"], p["zz"]
    out = np.zeros((kb, jm, im))
    for j in range(1, jm - 1):
        for i in range(1, im - 1):
            m = p["dum"][j]
            dface, ddif = faces_loop(dt[j], m, i, im)
            col = [faces_loop(rp[k, j], m, i, im) for k in range(kb)]
            acc = g * (-zz[0]) * dface * col[0][1]
            out[0, j, i] = acc
            for k in range(1, kb - 1):
                acc += (g * 0.5 * (zz[k - 1] - zz[k]) * dface * (col[k - 1][1] + col[k][1])
                        + g * 0.5 * (zz[k - 1] + zz[k]) * ddif * (col[k][0] - col[k - 1][0]))
                out[k, j, i] = acc
            scale = 0.25 * (dt[j, i] + dt[j, i - 1]) * (p["dy"][j, i] + p["dy"][j, i - 1])
            out[:kb - 1, j, i] *= scale * p["dum"][j, i]
    return out


def assert_matches_loops(rho, dt, p, cfg):
    drhox, drhoy, _ = internal.baropg(rho, dt, p, cfg)
    rp = rho - p["rmean"]
    want = drhox_loop(rp, dt, p, cfg.grav)
    np.testing.assert_allclose(drhox, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    # y through the same loops on the transposed problem
    jm, im = p["shape2"]
    pt = {**p, "shape2": (im, jm), "dum": p["dvm"].T, "dy": p["dx"].T}
    want_y = drhox_loop(rp.transpose(0, 2, 1), dt.T, pt, cfg.grav).transpose(0, 2, 1)
    np.testing.assert_allclose(drhoy, want_y, rtol=1e-12, atol=1e-12 * np.abs(want_y).max())
    second = internal.baropg(rho, dt, p, with_scheme(cfg, "second"))
    for a, b in zip(second[:2], (drhox, drhoy)):
        assert np.max(np.abs(a - b)) > 1e-3 * np.max(np.abs(b))  # not the two-point scheme


def test_mccalpin_matches_loop_reference():
    """Random densities and depths: the array form equals the loops of the formulas, next to
    land, at open edges and at the first and last faces (the seamount channel has land walls
    north and south and open ends east and west; the second problem is all sea)."""
    rng = np.random.default_rng(1)
    cfg = load_config("classic", pressure_gradient="mccalpin", im=11, jm=9, kb=6)
    params = make_params(cfg)
    p = params.fields
    rho = init_state(params)["rho"] + 1e-4 * rng.standard_normal((cfg.kb, cfg.jm, cfg.im))
    assert_matches_loops(rho, p["h"] + 0.1 * rng.standard_normal(p["h"].shape), p, cfg)
    p, rho, d, *_ = analytic_problem(10, kb=6)
    rho = rho + 1e-4 * rng.standard_normal(rho.shape)
    assert_matches_loops(rho, d, p, load_config("closed", pressure_gradient="mccalpin"))


# --- resting ocean, rho = rho(z) ------------------------------------------------------------

def resting(scheme, grid, **settings):
    """The closed basin at rest with T = T(z), S = 35 and no reference density subtracted, so
    the whole stratification goes through the pressure gradient (pom2k subtracts rmean, the
    initial density, which hides the sigma error at the start)."""
    im, jm, kb = grid
    cfg = load_config("closed", pressure_gradient=scheme, im=im, jm=jm, kb=kb, **settings)
    params = make_params(cfg)
    f = dict(params.fields, rmean=np.zeros_like(params.fields["rmean"]))
    return Params(cfg, f)


def pressure_force(params):
    """|g int rho_x dz| in m/s^2 at u and v points for the initial state (the force per unit
    mass that baropg's output stands for)."""
    cfg, p = params
    st = init_state(params)
    drhox, drhoy, _ = internal.baropg(st["rho"], p["h"] + st["et"], p, cfg)
    return np.abs(drhox / (p["aru"] * p["h"])), np.abs(drhoy / (p["arv"] * p["h"]))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_flat_bottom_gradient_is_zero(scheme):
    fx, fy = pressure_force(resting(scheme, (17, 13, 7), delh=0.0))
    assert np.max(fx) == 0.0 and np.max(fy) == 0.0
    fx, fy = pressure_force(resting(scheme, (17, 13, 7)))  # the seamount: not zero
    assert np.max(fx) > 1e-6 and np.max(fy) > 1e-6


def spurious_speeds(grid, nsteps):
    """max|u|, max|v| and the rms speed after ``nsteps`` steps from rest, per scheme."""
    out = {}
    for scheme in SCHEMES:
        params = resting(scheme, grid)
        state = init_state(params)
        for _ in range(nsteps):
            state = step(state, params)
        u, v = state["u"], state["v"]
        out[scheme] = [np.max(np.abs(u)), np.max(np.abs(v)), np.sqrt(np.mean(u**2 + v**2))]
        print(scheme, grid, nsteps, "steps: max|u|, max|v|, rms speed", out[scheme])
    return out


def test_mccalpin_smaller_sigma_error_over_seamount():
    """The classic sigma-coordinate test at pom2k's 21 levels: the spurious force at rest and
    the velocities it drives after 10 steps. (With 11 levels or fewer the vertical truncation
    dominates and McCalpin is no better; docs/gomd.md has the numbers.)"""
    grid = (25, 19, 21)
    force = {s: pressure_force(resting(s, grid)) for s in SCHEMES}
    for axis in (0, 1):
        assert np.max(force["mccalpin"][axis]) < 0.5 * np.max(force["second"][axis])
    speed = spurious_speeds(grid, 10)
    assert min(speed["second"][:2]) > 1e-3  # the error does drive a flow
    assert all(speed["mccalpin"][i] < 0.5 * speed["second"][i] for i in (0, 1))


@pytest.mark.slow
def test_mccalpin_smaller_sigma_error_one_day_pom2k_grid():
    """One model day (480 steps) on pom2k's 65x49x21 grid, ~1 minute."""
    speed = spurious_speeds((65, 49, 21), 480)
    assert all(speed["mccalpin"][i] < 0.5 * speed["second"][i] for i in range(3))


# --- convergence against an exact gradient --------------------------------------------------

L, H0 = 200e3, 4000.0


def analytic(x, y):
    """rho' = a(x, y) + b(x, y) z over a Gaussian seamount D(x, y), with the derivatives
    needed for the exact gradient. Linear in z, so the vertical sums are exact and the error
    is the horizontal truncation alone."""
    k = 2.0 * np.pi / L
    a = 1e-3 * np.sin(k * x) * np.cos(0.5 * k * y)
    ax = 1e-3 * k * np.cos(k * x) * np.cos(0.5 * k * y)
    ay = -0.5e-3 * k * np.sin(k * x) * np.sin(0.5 * k * y)
    b = 2e-6 * (1.0 + 0.5 * np.cos(k * (x + y)))
    bx = by = -1e-6 * k * np.sin(k * (x + y))
    d = H0 * (1.0 - 0.6 * np.exp(-((x - L / 2) ** 2 + (y - L / 2) ** 2) / (L / 5) ** 2))
    return {"a": a, "ax": ax, "ay": ay, "b": b, "bx": bx, "by": by, "d": d}


def analytic_problem(n, kb=9):
    """A uniform n x n grid over L x L, all sea (pom2k's masks: first row/column closed)."""
    dx = L / (n - 1)
    x, y = np.meshgrid(np.arange(n) * dx, np.arange(n) * dx)  # [j, i]
    _, zz = sigma_levels(kb, 3, kb - 2)
    s2 = (n, n)
    dum, dvm = np.ones(s2), np.ones(s2)
    dum[:, 0] = 0.0
    dvm[0, :] = 0.0
    p = {"im": n, "jm": n, "kb": kb, "shape2": s2, "zz": zz, "dum": dum, "dvm": dvm,
         "dx": np.full(s2, dx), "dy": np.full(s2, dx), "interior": box(s2, 2, n - 1, 2, n - 1),
         "rmean": np.zeros((kb,) + s2)}
    f = analytic(x, y)
    rho = f["a"] + f["b"] * zz[:, None, None] * f["d"]
    return p, rho, f["d"], x, y, dx


def gradient_error(n, scheme):
    """Max error of the baroclinic gradient between the top level and level k, divided by
    g dx, against the exact int_{z_k}^{z_1} d(rho)/dx dz at the faces, over the faces where
    McCalpin's stencil applies (x and y)."""
    cfg = load_config("closed", pressure_gradient=scheme, im=n, jm=n, kb=9)
    p, rho, d, x, y, dx = analytic_problem(n)
    drhox, drhoy, _ = internal.baropg(rho, d, p, cfg)
    zz, kb = p["zz"][:, None, None], p["kb"]
    upper = (np.arange(kb) < kb - 1)[:, None, None]
    s2 = p["shape2"]
    cases = ((drhox, x - dx / 2, y, "x", 0.5 * (d + np.roll(d, 1, 1)), box(s2, 3, n - 1, 2, n - 1)),
             (drhoy, x, y - dx / 2, "y", 0.5 * (d + np.roll(d, 1, 0)), box(s2, 2, n - 1, 3, n - 1)))
    errs = []
    for comp, xf, yf, deriv, d_face, inner in cases:
        f = analytic(xf, yf)
        z = zz * f["d"]
        exact = f["a" + deriv] * (z[:1] - z) + f["b" + deriv] * (z[:1] ** 2 - z ** 2) / 2.0
        # baropg returns D dy times the integral of the undivided difference (about dx rho_x)
        got = comp / (d_face * dx * cfg.grav * dx)
        got = got - got[:1]
        errs.append(np.max(np.abs(got - exact)[inner & upper]))
    return max(errs)


@pytest.mark.parametrize("scheme, order", [("second", 2.0), ("mccalpin", 4.0)])
def test_order_of_convergence(scheme, order):
    errs = [gradient_error(n, scheme) for n in (17, 33, 65)]
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    print(scheme, "errors", errs, "observed orders", rates)
    assert abs(rates[-1] - order) < 0.2, rates


def test_mccalpin_more_accurate_than_second_order():
    assert gradient_error(33, "mccalpin") < 0.1 * gradient_error(33, "second")


# --- the option on the compiled path, under sciml.grad, on the command line -----------------

def test_compiled_step_matches_eager_mccalpin():
    params = make_params(load_config("classic", pressure_gradient="mccalpin", im=9, jm=7, kb=5))
    fast = CompiledStep(params)
    eager, jitted = init_state(params), init_state(params)
    for _ in range(4):
        eager, jitted = step(eager, params), fast(jitted)
    assert jitted["iint"] == eager["iint"] == 4
    for k in eager:
        a, b = np.asarray(eager[k], np.float64), np.asarray(jitted[k], np.float64)
        assert np.max(np.abs(a - b)) <= 1e-10 * max(np.max(np.abs(a)), 1e-300), k
    second = make_params(load_config("classic", im=9, jm=7, kb=5))
    other = init_state(second)
    for _ in range(4):
        other = step(other, second)
    assert np.max(np.abs(other["u"] - jitted["u"])) > 1e-6  # the option reached the plan


def test_gradient_through_mccalpin_matches_finite_differences():
    params = make_params(load_config("classic", pressure_gradient="mccalpin", im=9, jm=7, kb=5))
    cfg, p = params
    rho0 = init_state(params)["rho"]
    rng = np.random.default_rng(0)
    drho = 1e-4 * rng.standard_normal(rho0.shape)
    dd = 10.0 * rng.standard_normal(p["h"].shape)

    def f(theta):
        fx, fy, _ = internal.baropg(rho0 + theta * drho, p["h"] + theta * dd, p, cfg)
        return 1e-12 * np.sum(fx * fx + fy * fy)

    g = float(sciml.grad(f)(0.3))
    eps = 1e-5
    fd = (float(f(0.3 + eps)) - float(f(0.3 - eps))) / (2 * eps)
    assert g == pytest.approx(fd, rel=1e-7)


def test_float32_stays_float32():
    params = make_params(load_config("classic", pressure_gradient="mccalpin", precision="float32",
                                     im=9, jm=7, kb=5))
    st = init_state(params)
    out = internal.baropg(st["rho"], params.fields["h"] + st["et"], params.fields, params.cfg)
    assert all(a.dtype == np.float32 for a in out)


def test_command_line_flag():
    cfg = build_config(parse_args(["--pressure-gradient", "mccalpin", "--grid", "9x7x5"]))
    assert cfg.pressure_gradient == "mccalpin"
    assert build_config(parse_args([])).pressure_gradient == "second"
    with pytest.raises(SystemExit):
        parse_args(["--pressure-gradient", "fourth"])
    with pytest.raises(ValueError, match="pressure_gradient must be"):
        load_config("classic", pressure_gradient="fourth")
