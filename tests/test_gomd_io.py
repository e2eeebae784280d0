"""GOMD: checkpoints (bit-for-bit restart, atomic writes, refusal) and the command line."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cases.gomd import init_state, load_config, make_params, step
from cases.gomd import io as gio
from cases.gomd.__main__ import main

SMALL = {"im": 17, "jm": 13, "kb": 7}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def advance(state, params, n):
    for _ in range(n):
        state = step(state, params)
    return state


def assert_same_state(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_restart_is_bit_for_bit(tmp_path):
    cfg = load_config("gomo", **SMALL)
    params = make_params(cfg)
    n = 6
    straight = advance(init_state(params), params, 2 * n)
    half = advance(init_state(params), params, n)
    path = str(tmp_path / "ck.npz")
    gio.save_checkpoint(path, half, cfg)
    resumed = advance(gio.load_checkpoint(path, cfg), params, n)
    assert_same_state(straight, resumed)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg = load_config("classic", **SMALL)
    params = make_params(cfg)
    state = init_state(params)
    path = str(tmp_path / "ck.npz")
    gio.save_checkpoint(path, state, cfg)
    original = open(path, "rb").read()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(gio.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        gio.save_checkpoint(path, step(state, params), cfg)
    assert open(path, "rb").read() == original
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind


def test_refuses_corrupt_and_mismatched_checkpoints(tmp_path):
    cfg = load_config("classic", **SMALL)
    state = init_state(make_params(cfg))
    path = str(tmp_path / "ck.npz")
    gio.save_checkpoint(path, state, cfg)
    with pytest.raises(gio.CheckpointError, match="another configuration.*im"):
        gio.load_checkpoint(path, load_config("classic", im=19, jm=13, kb=7))
    with pytest.raises(gio.CheckpointError, match="another configuration.*preset"):
        gio.load_checkpoint(path, load_config("gomo", **SMALL))
    data = bytearray(open(path, "rb").read())
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(gio.CheckpointError, match="unreadable or corrupt"):
        gio.load_checkpoint(str(truncated), cfg)
    with pytest.raises(gio.CheckpointError, match="no checkpoint"):
        gio.load_checkpoint(str(tmp_path / "missing.npz"), cfg)


def test_checksum_catches_changed_values(tmp_path):
    cfg = load_config("classic", **SMALL)
    state = init_state(make_params(cfg))
    path = str(tmp_path / "ck.npz")
    gio.save_checkpoint(path, state, cfg)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["el"] = arrays["el"] + 1e-12
    np.savez(path, **arrays)
    with pytest.raises(gio.CheckpointError, match="checksum"):
        gio.load_checkpoint(path, cfg)


CLI = [sys.executable, "-m", "cases.gomd", "--grid", "17x13x7", "--preset", "gomo",
       "--no-plots", "--quiet", "--output-every", "1", "--backend", "numpy"]


@pytest.mark.slow  # three CLI runs of 120 steps each
def test_sigkill_then_restart_gives_same_result(tmp_path):
    days = "0.25"  # 120 internal steps
    ref, run = tmp_path / "ref", tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": ROOT}
    subprocess.run(CLI + ["--days", days, "--out", str(ref)], check=True, env=env, cwd=ROOT)
    proc = subprocess.Popen(CLI + ["--days", days, "--out", str(run), "--checkpoint-every", "1"],
                            env=env, cwd=ROOT)
    ckpt = run / "checkpoint.npz"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # checkpoints are being rewritten every step now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cfg = load_config("gomo", days=0.25, **SMALL)
    killed_at = gio.load_checkpoint(str(ckpt), cfg)["iint"]
    assert 0 < killed_at < cfg.iend, "the run was not interrupted"
    subprocess.run(CLI + ["--days", days, "--out", str(run), "--restart", str(ckpt)],
                   check=True, env=env, cwd=ROOT)
    assert_same_state(gio.load_checkpoint(str(ref / "checkpoint.npz"), cfg),
                      gio.load_checkpoint(str(ckpt), cfg))


def test_cli_smoke(tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "out"
    assert main(["--grid", "17x13x7", "--days", "0.02", "--out", str(out), "--quiet",
                 "--output-every", "0.01", "--backend", "numpy"]) == 0
    printed = capsys.readouterr().out + capsys.readouterr().err
    for name in ("gomd.nc", "checkpoint.npz", "diagnostics.json", "sea_level.png",
                 "surface_currents.png", "temperature_section.png"):
        assert (out / name).exists(), name
    ds = xr.open_dataset(out / "gomd.nc")
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert ds["t"].attrs["standard_name"] == "sea_water_potential_temperature"
    assert ds["el"].shape == (ds.sizes["time"], 13, 17)
    assert np.all(np.isfinite(ds["u"].values))
    ds.close()
    del printed


def test_cli_gpu_backend_without_gpu_is_a_clear_error(tmp_path):
    from autodiff.errors import UnsupportedError

    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedError, match="jit: backend 'gpu'"):
            main(["--backend", "gpu", "--out", str(tmp_path)])
    else:
        pytest.skip("cupy is installed: the GPU run is tested in test_gomd_jit")


def test_cli_bench_reports_time_and_points(capsys):
    # the grid and preset of test_gomd_jit's compiled step: the kernels come from the cache
    assert main(["--grid", "9x7x5", "--bench", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cpu 9x7x5 float64: [0-9.]+ ms per internal step \(median of 3\), "
                     r"[0-9.e+]+ grid points/s", out), out
