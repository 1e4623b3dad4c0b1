"""Stateful models (inputs.NAME.state_from): sequences run step by step with the state carried, on real exports
and real ONNX Runtime sessions; sequence calibration; the decision-agreement budget; bad state declarations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import manifest, zoo


def _config(tmp_path, spec: str, inputs: dict, name: str = "config.yaml", **extra) -> str:
    data = {
        "model": {"source": zoo(spec)},
        "inputs": inputs,
        "export": {"exporter": "torchscript"},
        "bench": {"enabled": False, "peers": False},
        **extra,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


LEAKY = {"x": {"shape": "1x4"}, "h": {"shape": "1x4", "state_from": "h_out"}}
DETECTOR = {"x": {"shape": "1x8", "low": -1.0, "high": 1.0}, "h": {"shape": "1x16", "state_from": "h_out"}}


def _sequence_folder(path, count: int, steps: int, width: int, seed: int, low: float = 0.0):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        np.savez(path / f"s{i:02d}.npz", x=rng.uniform(low, 1.0, (steps, 1, width)).astype(np.float32))
    return path


def test_sequences_carry_the_state_on_a_real_session(tmp_path, cli) -> None:
    from infercc.config import parse_config
    from infercc.runtimes.isolation import IsolatedRuntime
    from infercc.sequences import rollout, state_plan

    config_path = _config(tmp_path, "stateful.py:leaky_sum", LEAKY)
    out = tmp_path / "out"
    assert cli("export", config_path, "-o", out, "-q").code == 0
    plan = state_plan(parse_config(yaml.safe_load(Path(config_path).read_text())).inputs, ["x", "h"])
    steps = 12
    sequence = {"x": np.ones((steps, 1, 4), np.float32)}
    expected = (1 - 0.9 ** np.arange(1, steps + 1)) / 0.1  # h after t steps of x = 1, from h = 0
    with IsolatedRuntime("onnxruntime-cpu", out / "model.onnx") as session:
        outputs, feeds = rollout(session.infer, sequence, plan)
        ignored = [
            session.infer({"x": sequence["x"][t], "h": np.zeros((1, 4), np.float32)}) for t in range(steps)
        ]
    assert outputs["h_out"].shape == (steps, 4) and outputs["y"].shape == (steps, 2)
    np.testing.assert_allclose(outputs["h_out"][:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(feeds[5]["h"], outputs["h_out"][4:5])  # step 5 was fed step 4's state
    # the same steps with the state dropped give another answer: the check above can fail
    dropped = np.concatenate([o["h_out"] for o in ignored])[:, 0]
    assert not np.allclose(dropped, expected, rtol=1e-2)


def test_verify_runs_sequences_step_by_step(tmp_path, cli) -> None:
    config_path = _config(tmp_path, "stateful.py:leaky_sum", LEAKY)
    out = tmp_path / "out"
    result = cli("verify", config_path, "-o", out, "--json")
    assert result.code == 0, result.text
    verify = manifest(out)["stages"]["verify"]["metrics"]
    assert "seeded synthetic sequences" in verify["inputs"]["source"]
    sequences = [s for s in verify["inputs"]["sets"] if s.startswith("sequence#")]
    assert len(sequences) == 4  # verify.samples sequences of DataSource.steps (32) steps
    assert verify["inputs"]["shapes"][sequences[0]] == {"x": [32, 1, 4]}
    entry = next(r for r in verify["results"] if r["runtime"] == "onnxruntime-cpu")
    assert entry["passed"] and set(entry["points"]) >= set(sequences)
    assert entry["outputs"]["h_out"]["kind"] == "embedding"  # a state is a hidden state, not scores


def test_calibration_runs_over_sequences_with_the_state_carried(tmp_path, cli) -> None:
    from onnxruntime.quantization.calibrate import load_tensors_data

    calib = _sequence_folder(tmp_path / "calib", count=6, steps=20, width=4, seed=1)
    evaluate = _sequence_folder(tmp_path / "eval", count=3, steps=30, width=4, seed=2)
    model = {"source": zoo("stateful.py:leaky_sum"), "output_kinds": {"y": "embedding"}}
    config_path = _config(tmp_path, "stateful.py:leaky_sum", LEAKY, model=model)
    out = tmp_path / "out"
    result = cli(
        "quantize", config_path, "-o", out, "--precision", "int8", "--calib", calib, "--eval", evaluate
    )
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    assert stages["calibrate"]["metrics"]["samples"] == 6 * 20  # every step of every sequence
    low, high = (float(np.max(v)) for v in load_tensors_data(out / "calibration.json").data["h"].range_value)
    # a single step sees h in [0, 1); carried over 20 steps of x in [0, 1) it grows towards 10
    assert low >= 0 and high > 4, (low, high)
    accuracy = stages["quantize-int8"]["metrics"]["accuracy"]
    assert accuracy["samples"] == 3 * 30 and accuracy["cosine"] > 0.99


def _detector(tmp_path, decision: dict, name: str, **quantize) -> str:
    return _config(
        tmp_path,
        "stateful.py:gru_detector",
        DETECTOR,
        name=name,
        quantize={"int8_budget_decision": decision, **quantize},
    )


def test_decision_budget_met_and_missed(tmp_path, cli) -> None:
    calib = _sequence_folder(tmp_path / "calib", count=8, steps=30, width=8, seed=3, low=-1.0)
    evaluate = _sequence_folder(tmp_path / "eval", count=10, steps=30, width=8, seed=4, low=-1.0)
    args = ["--precision", "int8", "--calib", calib, "--eval", evaluate]
    met = _detector(tmp_path, {"output": "event_prob", "threshold": 0.5, "min_agreement": 0.9}, "met.yaml")
    out = tmp_path / "met"
    result = cli("compile", met, "-o", out, *args, "--json")
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    decision = stages["quantize-int8"]["metrics"]["accuracy"]["decision"]
    assert decision["samples"] == 10 * 30 and 0.9 <= decision["agreement"] <= 1.0
    assert 0 < decision["positive_fp32"] < decision["samples"]  # decisions change over time
    budget = next(r for r in stages["verify"]["metrics"]["results"] if r["artifact"] == "int8")["budget"]
    assert budget["met"] and budget["decision_measured"] >= 0.9

    # a threshold between an FP32 probability and INT8's at the same step flips that decision
    fp32, int8 = (_probabilities(out / f"model.{p}.onnx", evaluate) for p in ("fp32", "int8"))
    assert _agreement(fp32, int8, 0.5) == decision["agreement"]
    step = int(np.argmax(np.abs(fp32 - int8)))
    threshold = float(fp32[step] + int8[step]) / 2
    assert _agreement(fp32, int8, threshold) < 1.0
    strict = {"output": "event_prob", "threshold": threshold, "min_agreement": 1.0}
    missed = _detector(tmp_path, strict, "missed.yaml", fallback_max_steps=0)
    result = cli("quantize", missed, "-o", tmp_path / "missed", *args)
    assert result.code == 1, result.text
    assert f"decision agreement (event_prob > {threshold:g})" in result.text and "< 100.00%" in result.text
    assert "Traceback" not in result.text


def _probabilities(model, folder) -> np.ndarray:
    """event_prob over every step of every sequence file, the state carried (a real ONNX Runtime session)."""
    from infercc.runtimes.isolation import IsolatedRuntime
    from infercc.sequences import StatePair, StatePlan, rollout

    plan = StatePlan((StatePair("h", "h_out", (1, 16), (1, 16), (1, 16), "float32", 0.0),), ("x",))
    with IsolatedRuntime("onnxruntime-cpu", model) as session:
        runs = [rollout(session.infer, dict(np.load(f)), plan)[0] for f in sorted(folder.iterdir())]
    return np.concatenate([r["event_prob"] for r in runs]).ravel()


def _agreement(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    return round(float(np.mean((a > threshold) == (b > threshold))), 6)


BAD = [
    ({"h": {"shape": "1x4", "state_from": "x"}}, "leaky_sum", "names an input"),
    ({"h": {"state_from": "h_out"}}, "leaky_sum", "needs its shape"),
    (
        {"x": {"shape": "1x4", "state_from": "h_out"}, "h": {"shape": "1x4", "state_from": "h_out"}},
        "leaky_sum",
        "already feeds input",
    ),
    ({"h": {"shape": "1x4", "state_from": "h_next"}}, "leaky_sum", "the model has no output h_next"),
    (
        {"h": {"shape": "1x8", "state_from": "h_out"}},
        "narrow_state",
        "output h_out is 1x4 float32, but input h takes 1x8 float32",
    ),
    (
        {"h": {"shape": "1x4", "state_from": "h_out", "dtype": "int64"}},
        "leaky_sum",
        "output h_out is 1x4 float32, but input h takes 1x4 int64",
    ),
]


@pytest.mark.parametrize(("inputs", "model", "words"), BAD, ids=[b[2][:24] for b in BAD])
def test_bad_state_declarations_exit_2(tmp_path, cli, inputs, model, words) -> None:
    merged = {"x": {"shape": "1x4"}, **inputs}
    config_path = _config(tmp_path, f"stateful.py:{model}", merged)
    result = cli("export", config_path, "-o", tmp_path / "out")
    assert result.code == 2, result.text
    assert words in result.text and "Traceback" not in result.text


def test_bad_decision_output_exit_2(tmp_path, cli) -> None:
    config_path = _config(
        tmp_path, "stateful.py:leaky_sum", LEAKY, quantize={"int8_budget_decision": {"output": "prob"}}
    )
    result = cli("export", config_path, "-o", tmp_path / "out")
    assert (
        result.code == 2
        and "quantize.int8_budget_decision.output: the model has no output prob" in result.text
    )
    named = _config(
        tmp_path,
        "stateful.py:leaky_sum",
        LEAKY,
        name="named.yaml",
        model={"source": zoo("stateful.py:leaky_sum"), "output_names": ["y", "h_new"]},
    )
    result = cli("export", named, "-o", tmp_path / "out2")
    assert result.code == 2 and "the model has no output h_out (model.output_names: y, h_new)" in result.text
