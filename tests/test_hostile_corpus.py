"""Hostile and mistaken inputs, run as a user or an attacker would: real CLI child processes.

Every case asserts its exit code and the key words of its message, that no traceback is shown, that no
file outside --out was touched (a fake HOME and the folder of input files are compared before and after),
that nothing under --out that infercc did not create was deleted, and that the child's peak memory
(os.wait4's ru_maxrss) stayed below a bound: no case may allocate what it was asked to refuse.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from infercc.fsutil import OWNER_MARKER
from tests.conftest import INFERCC, ROOT

CNN = str(ROOT / "tests" / "zoo" / "cnn.py") + ":small_cnn"
NO_TORCH_MB = 400  # a run that stops before torch is imported
WITH_TORCH_MB = 1500  # a run that imported torch and built a small model


@dataclass
class Measured:
    code: int
    out: str
    err: str
    peak_mb: float

    @property
    def text(self) -> str:
        return self.out + self.err


def run_measured(args: list[str | Path], env: dict[str, str], cwd: Path, timeout: float = 120) -> Measured:
    """Run infercc as a grandchild through tests/corpus/measure.py, which reports its own peak RSS."""
    peak_file = cwd.parent / "peak_kib.txt"
    launcher = [sys.executable, str(ROOT / "tests" / "corpus" / "measure.py"), str(peak_file)]
    proc = subprocess.Popen(
        [*launcher, *INFERCC, *map(str, args)],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a hung run is killed with its launcher
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"still running after {timeout}s: it hung")
    return Measured(proc.returncode, out, err, int(peak_file.read_text()) / 1024)


# onnxruntime itself keeps a device id under ~/.cache/Microsoft/DeveloperTools/.onnxruntime when imported, and
# OpenVINO its telemetry id under ~/intel/ when it compiles a model (the load gate loads artifacts on it)
THIRD_PARTY_HOME_FILES = (".cache/Microsoft/DeveloperTools/", "intel/")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if (not p.is_dir() or p.is_symlink())
        and not str(p.relative_to(folder)).startswith(THIRD_PARTY_HOME_FILES)
    }


def _relu_onnx(path: Path) -> Path:
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


def _npz_bomb(path: Path, megabytes: int) -> None:
    """An .npz whose one member inflates to `megabytes` of zeros (a few hundred KB on disk)."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 4), np.float32))
    header["shape"] = (megabytes * (1 << 20) // 16, 4)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as fh,
    ):
        np.lib.format.write_array_header_1_0(fh, header)
        chunk = bytes(1 << 20)
        for _ in range(megabytes):
            fh.write(chunk)


def _lying_npy(path: Path) -> None:
    """A header for 1000000x4 float32 followed by 16 bytes of data."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 4), np.float32))
    header["shape"] = (1_000_000, 4)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(bytes(16))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hostile files, made once; never modified by any case (checked)."""
    folder = tmp_path_factory.mktemp("hostile")
    os.mkfifo(folder / "fifo.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "urandom.yaml").symlink_to("/dev/urandom")
    (folder / "zero.onnx").symlink_to("/dev/zero")
    (folder / "big.yaml").write_text("model:\n  kwargs:\n    x:\n" + "      - 1\n" * 500_000)
    (folder / "many.yaml").write_text("model:\n  kwargs:\n    x: [" + "1," * 150_000 + "1]\n")
    _relu_onnx(folder / "relu.onnx")
    (folder / "bomb").mkdir()
    _npz_bomb(folder / "bomb" / "batch.npz", 300)
    (folder / "liar").mkdir()
    _lying_npy(folder / "liar" / "batch.npy")
    (folder / "liar_npz").mkdir()
    with zipfile.ZipFile(folder / "liar_npz" / "batch.npz", "w") as archive, archive.open("x.npy", "w") as fh:
        header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 4), np.float32))
        header["shape"] = (1_000_000, 4)
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(bytes(16))
    (folder / "big_params.py").write_text(
        "from torch import nn\n\ndef make():\n    return nn.Linear(4096, 4096)  # 64 MiB of weights\n"
    )
    return folder


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    """A fake HOME with files in it, and an --out folder infercc owns that also holds user files."""
    home = tmp_path / "home"
    (home / "project").mkdir(parents=True)
    (home / "project" / "notes.txt").write_text("keep")
    out = tmp_path / "out"
    (out / "user-sub").mkdir(parents=True)
    (out / OWNER_MARKER).write_text('{"created_by": "infercc"}\n')
    (out / ".tmp-important-notes.txt").write_text("keep")
    (out / "user-sub" / ".infercc-tmp-999999-draft.py").write_text("keep")  # a subfolder infercc did not make
    return {"home": home, "out": out}


SOCKET = object()  # placeholder: the socket is bound inside the test (it must be alive while the case runs)

CASES = [
    # id, args (INPUTS/ = the hostile files), env, exit code, words, peak-memory bound (MB)
    ("config_fifo", ["compile", "INPUTS/fifo.yaml"], {}, 2, ["is a FIFO, not a regular file"], NO_TORCH_MB),
    ("config_dev_zero", ["compile", "INPUTS/zero.yaml"], {}, 2, ["is a device"], NO_TORCH_MB),
    ("config_dev_urandom", ["compile", "INPUTS/urandom.yaml"], {}, 2, ["is a device"], NO_TORCH_MB),
    ("config_socket", ["compile", "SOCKET"], {}, 2, ["is a socket"], NO_TORCH_MB),
    (
        "config_too_large",
        ["compile", "INPUTS/big.yaml"],
        {},
        2,
        ["infercc reads at most 4.0 MiB"],
        NO_TORCH_MB,
    ),
    ("config_too_many_values", ["compile", "INPUTS/many.yaml"], {}, 2, ["holds 150,00"], NO_TORCH_MB),
    ("onnx_is_dev_zero", ["export", "--model", "INPUTS/zero.onnx"], {}, 2, ["is a device"], NO_TORCH_MB),
    (
        "shape_100000_images",
        ["export", "--model", CNN, "--shape", "x:100000x3x224x224"],
        {},
        2,
        ["Input x", "100000x3x224x224", "56.1 GiB"],
        NO_TORCH_MB,
    ),
    (
        "shape_3000_images_on_a_small_machine",
        ["export", "--model", CNN, "--shape", "x:3000x3x224x224"],
        {"INFERCC_MEMORY_LIMIT_MB": "16384"},
        2,
        ["Input x", "1.7 GiB", "16.0 GiB of memory is available"],
        NO_TORCH_MB,
    ),
    (
        "dimension_overflow",
        ["export", "--model", CNN, "--shape", "x:2147483647x2147483647x2147483647"],
        {},
        2,
        ["elements", "overflows"],
        NO_TORCH_MB,
    ),
    (
        "dimension_digits",
        ["export", "--model", CNN, "--shape", "x:1x" + "9" * 5000],
        {},
        2,
        ["far too large"],
        NO_TORCH_MB,
    ),
    (
        "val_range_1e30_on_int64",
        ["export", "--model", CNN, "--shape", "x:1x4", "--dtype", "x:int64", "--val-range", "x:[0,1e30]"],
        {},
        2,
        ["does not fit int64"],
        NO_TORCH_MB,
    ),
    (
        "val_range_infinite",
        ["export", "--model", CNN, "--shape", "x:1x4", "--val-range", "x:[0,inf]"],
        {},
        2,
        ["--val-range", "x:[0,inf]"],
        NO_TORCH_MB,
    ),
    (
        "npz_bomb",
        ["verify", "--model", "INPUTS/relu.onnx", "--shape", "x:2x4", "--inputs", "INPUTS/bomb"],
        {"INFERCC_MEMORY_LIMIT_MB": "256"},
        2,
        ["batch.npz", "declare 300.0 MiB uncompressed"],
        WITH_TORCH_MB,
    ),
    (
        "npy_header_claims_more_than_the_file",
        ["verify", "--model", "INPUTS/relu.onnx", "--shape", "x:2x4", "--inputs", "INPUTS/liar"],
        {},
        2,
        ["batch.npy", "header claims a 1000000x4 float32 array", "16 bytes"],
        WITH_TORCH_MB,
    ),
    (
        "npz_member_header_claims_more",
        ["verify", "--model", "INPUTS/relu.onnx", "--shape", "x:2x4", "--inputs", "INPUTS/liar_npz"],
        {},
        2,
        ["batch.npz:x.npy", "header claims"],
        WITH_TORCH_MB,
    ),
    (
        "parameters_exceed_memory",
        ["export", "--model", "INPUTS/big_params.py:make", "--shape", "x:1x4096"],
        {"INFERCC_MEMORY_LIMIT_MB": "100"},
        2,
        ["64.0 MiB of parameters", "needs about 128.0 MiB"],
        WITH_TORCH_MB,
    ),
    (
        "out_is_root",
        ["export", "--model", CNN, "--shape", "x:1x4", "--out", "/"],
        {},
        2,
        ["filesystem root"],
        NO_TORCH_MB,
    ),
    (
        "out_is_home",
        ["export", "--model", CNN, "--shape", "x:1x4", "--out", "HOME"],
        {},
        2,
        ["home folder"],
        NO_TORCH_MB,
    ),
    (
        "out_is_a_users_project",
        ["export", "--model", CNN, "--shape", "x:1x4", "--out", "HOME/project"],
        {},
        2,
        ["infercc did not write", "--out-force"],
        NO_TORCH_MB,
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "code", "words", "bound_mb"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input(inputs, sandbox, tmp_path, args, env, code, words, bound_mb) -> None:
    home, out = sandbox["home"], sandbox["out"]
    args = [str(a).replace("INPUTS", str(inputs)).replace("HOME", str(home)) for a in args]
    if "--out" not in args:
        args += ["--out", str(out)]
    before = {"home": snapshot(home), "inputs": snapshot(inputs), "out": snapshot(out)}
    cwd = tmp_path / "cwd"  # the child's current folder: nothing may appear there either
    cwd.mkdir()
    server = None
    if "SOCKET" in args:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(tmp_path / "config.yaml.sock"))
        args[args.index("SOCKET")] = str(tmp_path / "config.yaml.sock")
    try:
        result = run_measured(args, {"HOME": str(home), **env}, cwd)
    finally:
        if server is not None:
            server.close()
    assert result.code == code, result.text
    for word in words:
        assert word in result.err, f"{word!r} not in:\n{result.err}"
    assert "Traceback" not in result.text and "internal error" not in result.text, result.text
    assert snapshot(home) == before["home"] and snapshot(inputs) == before["inputs"]
    assert list(cwd.iterdir()) == []
    after = snapshot(out)
    assert {k: after.get(k) for k in before["out"]} == before["out"], (
        "a file under --out was changed or deleted"
    )
    assert result.peak_mb < bound_mb, f"peak RSS {result.peak_mb:.0f} MB"
