"""sciml.solve against analytic and manufactured solutions, with measured orders of accuracy."""

import numpy as np
import pytest
import scipy.integrate
import sympy as sp

import sciml
from sciml.errors import CFLError, ConvergenceError, NaNError, ProblemError

t, x, y = sp.symbols("t x y")
nu, c, k = sp.symbols("nu c k")
u, v = sp.Function("u"), sp.Function("v")


def order_of(errors, ns):
    """Observed order from the two finest grids (h ~ 1/n); the coarsest grid only shows that
    the error keeps falling."""
    assert errors[0] > errors[1] > errors[2], errors
    return np.log(errors[-2] / errors[-1]) / np.log(ns[-1] / ns[-2])


def heat(n, order=2, method="rk4", dt=None, bc=("dirichlet", 0, 0), ic=None):
    ic = sp.sin(sp.pi * x) if ic is None else ic
    return sciml.solve(sp.Eq(u(t, x).diff(t), nu * u(t, x).diff(x, 2)), u, t=(0, 0.1),
                       domain={x: (0, 1)}, grid=n, ic=ic, bc={x: bc}, params={nu: 0.1},
                       order=order, method=method, dt=dt, t_eval=[0, 0.1])


@pytest.mark.parametrize("order", [2, 4])
def test_heat_dirichlet_space_order(order):
    ns = [21, 41, 81]
    errs = []
    for n in ns:
        sol = heat(n, order)
        xs = sol.coords["x"]
        exact = np.exp(-0.1 * np.pi**2 * 0.1) * np.sin(np.pi * xs)
        errs.append(np.abs(sol[u][-1] - exact).max())
    assert abs(order_of(errs, np.array(ns) - 1) - order) < 0.2, errs


def test_heat_neumann_space_order():
    ns = [21, 41, 81]
    errs = []
    for n in ns:
        sol = heat(n, 2, bc=("neumann", 0, 0), ic=sp.cos(sp.pi * x))
        xs = sol.coords["x"]
        errs.append(np.abs(sol[u][-1] - np.exp(-0.1 * np.pi**2 * 0.1) * np.cos(np.pi * xs)).max())
    assert abs(order_of(errs, np.array(ns) - 1) - 2) < 0.2, errs


def time_order(method, dts, n=21):
    """Order from successive differences u(dt) - u(dt/2): no reference solution needed, and
    only the time error of the semi-discrete system is measured."""
    sols = [heat(n, 2, method=method, dt=d)[u][-1] for d in dts]
    diffs = [np.abs(a - b).max() for a, b in zip(sols, sols[1:])]
    return np.log2(diffs[0] / diffs[1])


@pytest.mark.parametrize("method,order", [("cn", 2), ("be", 1)])
def test_heat_implicit_time_order(method, order):
    assert abs(time_order(method, [0.02, 0.01, 0.005]) - order) < 0.2


def test_heat_rk4_time_order():
    assert abs(time_order("rk4", [0.01, 0.005, 0.0025]) - 4) < 0.2


@pytest.mark.parametrize("order,scheme", [(2, "central"), (4, "central"), (1, "upwind")])
def test_advection_periodic_order(order, scheme):
    ns = [32, 64, 128]
    errs = []
    for n in ns:
        sol = sciml.solve(sp.Eq(u(t, x).diff(t), -c * u(t, x).diff(x)), u, t=(0, 0.5),
                          domain={x: (0, 1)}, grid=n, ic=sp.sin(2 * sp.pi * x),
                          bc={x: "periodic"}, params={c: 1.0}, order=max(order, 2),
                          scheme=scheme, upwind_order=1, t_eval=[0, 0.5])
        xs = sol.coords["x"]
        errs.append(np.abs(sol[u][-1] - np.sin(2 * np.pi * (xs - 0.5))).max())
    assert abs(order_of(errs, ns) - order) < 0.2, errs


def test_wave_system_order():
    ns = [32, 64, 128]
    errs = []
    for n in ns:
        sol = sciml.solve([sp.Eq(u(t, x).diff(t), v(t, x)),
                           sp.Eq(v(t, x).diff(t), c**2 * u(t, x).diff(x, 2))], [u, v],
                          t=(0, 0.3), domain={x: (0, 1)}, grid=n,
                          ic={u: sp.sin(2 * sp.pi * x), v: 0}, bc={x: "periodic"},
                          params={c: 1.0}, t_eval=[0, 0.3])
        xs = sol.coords["x"]
        exact = np.sin(2 * np.pi * xs) * np.cos(2 * np.pi * 0.3)
        errs.append(np.abs(sol[u][-1] - exact).max())
    assert abs(order_of(errs, ns) - 2) < 0.2, errs


def test_burgers_against_cole_hopf():
    # phi = 1 + a exp(-nu t) cos(x) solves the heat equation; u = -2 nu phi_x / phi.
    a, visc, tend = 0.5, 0.1, 1.0
    xs_sym = sp.Symbol("x")

    def exact(xs, tt):
        e = a * np.exp(-visc * tt)
        return 2 * visc * e * np.sin(xs) / (1 + e * np.cos(xs))

    ic = 2 * visc * a * sp.sin(xs_sym) / (1 + a * sp.cos(xs_sym))
    ns = [32, 64, 128]
    errs = []
    for n in ns:
        sol = sciml.solve(sp.Eq(u(t, x).diff(t), -u(t, x) * u(t, x).diff(x)
                                + nu * u(t, x).diff(x, 2)), u, t=(0, tend),
                          domain={x: (0, 2 * sp.pi)}, grid=n, ic=ic.subs(xs_sym, x),
                          bc={x: "periodic"}, params={nu: visc}, t_eval=[0, tend])
        errs.append(np.abs(sol[u][-1] - exact(sol.coords["x"], tend)).max())
    assert abs(order_of(errs, ns) - 2) < 0.2, errs


@pytest.mark.parametrize("method", ["direct", "cg", "gmres", "multigrid"])
def test_poisson_2d_order(method):
    f = -2 * sp.pi**2 * sp.sin(sp.pi * x) * sp.sin(sp.pi * y)
    ns = [17, 33, 65]
    errs = []
    for n in ns:
        sol = sciml.solve(sp.Eq(u(x, y).diff(x, 2) + u(x, y).diff(y, 2), f), u,
                          domain={x: (0, 1), y: (0, 1)}, grid=n,
                          bc={x: ("dirichlet", 0, 0), y: ("dirichlet", 0, 0)}, method=method)
        X, Y = np.meshgrid(sol.coords["x"], sol.coords["y"], indexing="ij")
        errs.append(np.abs(sol[u] - np.sin(np.pi * X) * np.sin(np.pi * Y)).max())
    assert abs(order_of(errs, np.array(ns) - 1) - 2) < 0.2, errs


def test_nonlinear_elliptic_bratu_converges():
    lam = 1.0
    sol = sciml.solve(sp.Eq(u(x).diff(x, 2) + lam * sp.exp(u(x)), 0), u, domain={x: (0, 1)},
                      grid=101, bc={x: ("dirichlet", 0, 0)})
    uu = sol[u]
    xs = sol.coords["x"]
    h = xs[1] - xs[0]
    resid = (uu[2:] - 2 * uu[1:-1] + uu[:-2]) / h**2 + lam * np.exp(uu[1:-1])
    assert np.abs(resid).max() < 1e-8 and sol.stats["newton_iterations"] > 1
    assert 0.13 < uu.max() < 0.15  # lower Bratu branch at lambda = 1: max u = 0.1405


def test_stiff_robertson_against_scipy():
    y1, y2, y3 = sp.Function("y1"), sp.Function("y2"), sp.Function("y3")
    T = sp.Symbol("t")
    eqs = [sp.Eq(y1(T).diff(T), -0.04 * y1(T) + 1e4 * y2(T) * y3(T)),
           sp.Eq(y2(T).diff(T), 0.04 * y1(T) - 1e4 * y2(T) * y3(T) - 3e7 * y2(T) ** 2),
           sp.Eq(y3(T).diff(T), 3e7 * y2(T) ** 2)]
    sol = sciml.solve(eqs, [y1, y2, y3], t=(0, 100), ic={y1: 1, y2: 0, y3: 0}, method="stiff",
                      rtol=1e-8, atol=1e-12, t_eval=[0, 1, 10, 100])

    def f(_, s):
        return [-0.04 * s[0] + 1e4 * s[1] * s[2],
                0.04 * s[0] - 1e4 * s[1] * s[2] - 3e7 * s[1] ** 2, 3e7 * s[1] ** 2]

    ref = scipy.integrate.solve_ivp(f, (0, 100), [1, 0, 0], method="Radau", rtol=1e-10,
                                    atol=1e-14, t_eval=[0, 1, 10, 100])
    for i, fn in enumerate([y1, y2, y3]):
        np.testing.assert_allclose(sol[fn], ref.y[i], rtol=1e-4, atol=1e-12)


def test_ode_decay_and_second_order():
    T = sp.Symbol("t")
    yf = sp.Function("y")
    sol = sciml.solve(sp.Eq(yf(T).diff(T), -k * yf(T)), yf, t=(0, 10), ic={yf: 1},
                      params={k: 0.5}, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol[yf], np.exp(-0.5 * sol.t), rtol=1e-8)
    osc = sciml.solve(sp.Eq(yf(T).diff(T, 2), -yf(T)), yf, t=(0, 6),
                      ic={yf: 1, yf(T).diff(T): 0}, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(osc[yf], np.cos(osc.t), atol=1e-8)


def test_algebraic_system():
    a, b = sp.symbols("a b")
    sol = sciml.solve([a**2 + b**2 - 4, sp.exp(a) - b - 1], [a, b], guess={a: 1, b: 1})
    av, bv = float(sol[a]), float(sol[b])
    assert abs(av**2 + bv**2 - 4) < 1e-10 and abs(np.exp(av) - bv - 1) < 1e-10


def test_algebraic_nonconvergence_is_reported():
    a = sp.Symbol("a")
    with pytest.raises(ConvergenceError):
        sciml.solve([a**2 + 1], [a], guess={a: 0.5}, maxiter=10)


def test_solution_xarray_and_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    sol = heat(21)
    ds = sol.to_xarray()
    assert ds["u"].shape == (2, 21) and "x" in ds.coords and "t" in ds.coords
    ax = sol.plot()
    ax.figure.savefig(tmp_path / "heat.png")


def test_errors_name_the_problem():
    eq = sp.Eq(u(t, x).diff(t), nu * u(t, x).diff(x, 2))
    common = dict(t=(0, 0.1), domain={x: (0, 1)}, grid=21)
    with pytest.raises(ProblemError, match="initial"):
        sciml.solve(eq, u, bc={x: ("dirichlet", 0, 0)}, params={nu: 1}, **common)
    with pytest.raises(ProblemError, match="bc="):
        sciml.solve(eq, u, ic=sp.sin(sp.pi * x), params={nu: 1}, **common)
    with pytest.raises(ProblemError, match="nu"):
        sciml.solve(eq, u, ic=sp.sin(sp.pi * x), bc={x: ("dirichlet", 0, 0)}, **common)
    with pytest.raises(ProblemError, match="kind"):
        sciml.solve(eq, u, ic=sp.sin(sp.pi * x), bc={x: ("robin", 0, 0)}, params={nu: 1},
                    **common)
    with pytest.raises(CFLError, match="dt="):
        sciml.solve(eq, u, ic=sp.sin(sp.pi * x), bc={x: ("dirichlet", 0, 0)},
                    params={nu: 1.0}, dt=0.01, **common)


def test_nan_in_state_names_step_and_field():
    # u_t = u_xx + u^3 blows up in finite time (about 1/(2 u0^2) = 0.02 for u0 = 5): the
    # overflow is reported with the time interval, the field and a grid index.
    eq = sp.Eq(u(t, x).diff(t), u(t, x).diff(x, 2) + u(t, x) ** 3)
    with pytest.raises(NaNError, match=r"field u\(t, x\) at grid index \(\d+,\)"):
        sciml.solve(eq, u, t=(0, 0.05), domain={x: (0, 1)}, grid=21, ic=5 * sp.sin(sp.pi * x),
                    bc={x: ("dirichlet", 0, 0)}, dt=1e-4, method="rk4")


def test_jitted_and_eager_time_stepping_agree(monkeypatch):
    monkeypatch.setenv("SCIML_SOLVE_JIT", "0")
    eager = heat(33)[u][-1]
    monkeypatch.setenv("SCIML_SOLVE_JIT", "1")
    jitted = heat(33)[u][-1]
    np.testing.assert_allclose(jitted, eager, rtol=1e-12, atol=1e-15)


def test_gradient_through_explicit_solve_matches_finite_differences():
    def final_energy(visc):
        sol = sciml.solve(sp.Eq(u(t, x).diff(t), nu * u(t, x).diff(x, 2)), u, t=(0, 0.05),
                          domain={x: (0, 1)}, grid=17, ic=sp.sin(sp.pi * x),
                          bc={x: ("dirichlet", 0, 0)}, params={nu: visc}, dt=0.0025,
                          t_eval=[0, 0.05])
        return sciml.numpy.sum(sol[u][-1] ** 2)

    g = sciml.grad(final_energy)(0.1)
    eps = 1e-6
    fd = (final_energy(0.1 + eps) - final_energy(0.1 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_gradient_through_algebraic_solve_is_implicit():
    # x^3 + p x - 1 = 0: dx/dp = -x / (3 x^2 + p) by the implicit function theorem.
    a, p = sp.symbols("a p")

    def root(pv):
        return sciml.solve([a**3 + p * a - 1], [a], guess={a: 1.0}, params={p: pv})[a]

    x = float(root(2.0))
    assert abs(x**3 + 2 * x - 1) < 1e-10
    g = sciml.grad(root)(2.0)
    np.testing.assert_allclose(g, -x / (3 * x**2 + 2.0), rtol=1e-10)
    eps = 1e-6
    np.testing.assert_allclose(g, (root(2 + eps) - root(2 - eps)) / (2 * eps), rtol=1e-6)
    # The Newton loop runs once, forward; the derivative is a linear solve. (Reverse mode
    # through the while_loop itself would raise: it has no max_steps.)
    graph = sciml.make_graph(sciml.grad(root), 2.0)
    names = [n.prim.name for n in graph.body]
    assert names.count("while_loop") == 1 and "solve" in names and "scan" not in names


def test_gradient_with_respect_to_initial_and_boundary_values():
    # Initial amplitude a and a left boundary value g enter through params, so a loss of the
    # solution differentiates with respect to both (reverse mode through the time loop).
    a, g = sp.symbols("a g")

    def loss(av, gv):
        sol = sciml.solve(sp.Eq(u(t, x).diff(t), nu * u(t, x).diff(x, 2)), u, t=(0, 0.05),
                          domain={x: (0, 1)}, grid=17, ic=a * sp.sin(sp.pi * x),
                          bc={x: ("dirichlet", g, 0)}, params={nu: 0.1, a: av, g: gv},
                          dt=0.0025, t_eval=[0, 0.05])
        return sciml.numpy.sum(sol[u][-1] ** 2)

    ga, gg = sciml.grad(loss, argnums=(0, 1))(1.0, 0.5)
    eps = 1e-6
    np.testing.assert_allclose(ga, (loss(1 + eps, 0.5) - loss(1 - eps, 0.5)) / (2 * eps),
                               rtol=1e-6)
    np.testing.assert_allclose(gg, (loss(1.0, 0.5 + eps) - loss(1.0, 0.5 - eps)) / (2 * eps),
                               rtol=1e-6)


def test_gradient_through_steady_solve_is_implicit():
    # -k u'' = f on (0, 1), u = 0 at both ends, f = pi^2 sin(pi x): u = sin(pi x) / k. The
    # loss sum(u) has d/dk = -sum(u) / k; the solve differentiates by one adjoint solve.
    kk = sp.Symbol("k")

    def total(kv):
        sol = sciml.solve(sp.Eq(-kk * u(x).diff(x, 2), sp.pi**2 * sp.sin(sp.pi * x)), u,
                          domain={x: (0, 1)}, grid=41, bc={x: ("dirichlet", 0, 0)},
                          params={kk: kv})
        return sciml.numpy.sum(sol[u])

    eager = total(2.0)
    np.testing.assert_allclose(eager, sciml.eval_graph(sciml.make_graph(total, 2.0), 2.0),
                               rtol=1e-8)
    np.testing.assert_allclose(sciml.grad(total)(2.0), -eager / 2.0, rtol=1e-8)


@pytest.mark.parametrize("method", ["cn", "be"])
def test_gradient_through_implicit_time_stepping(method):
    def final_energy(visc):
        sol = sciml.solve(sp.Eq(u(t, x).diff(t), nu * u(t, x).diff(x, 2)), u, t=(0, 0.05),
                          domain={x: (0, 1)}, grid=17, ic=sp.sin(sp.pi * x),
                          bc={x: ("dirichlet", 0, 0)}, params={nu: visc}, dt=0.01,
                          method=method, t_eval=[0, 0.05])
        return sciml.numpy.sum(sol[u][-1] ** 2)

    eager = final_energy(0.1)
    traced = sciml.eval_graph(sciml.make_graph(final_energy, 0.1), 0.1)
    np.testing.assert_allclose(traced, eager, rtol=1e-9)
    g = sciml.grad(final_energy)(0.1)
    eps = 1e-6
    fd = (final_energy(0.1 + eps) - final_energy(0.1 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_gradient_through_adaptive_ode_solve():
    T = sp.Symbol("t")
    yf = sp.Function("y")

    def final(kv):
        sol = sciml.solve(sp.Eq(yf(T).diff(T), -k * yf(T) + sp.sin(T)), yf, t=(0, 2),
                          ic={yf: 1}, params={k: kv}, rtol=1e-10, atol=1e-12, t_eval=[0, 1, 2])
        return sol[yf][-1]

    eager = float(final(0.5))
    traced = sciml.eval_graph(sciml.make_graph(final, 0.5), 0.5)
    np.testing.assert_allclose(traced, eager, rtol=1e-8)
    g = sciml.grad(final)(0.5)
    eps = 1e-5
    fd = (final(0.5 + eps) - final(0.5 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-5)
