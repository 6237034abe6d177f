"""Suites: validated before anything runs, one `FILE:LINE: message` per problem."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from helpers import cli
from optbench.errors import SuiteError
from optbench.suite import json_schema, load_suite, parse_suite

GOOD = """\
name: demo
model: {source: reference, size: tiny}
backend: cpu
workload: {kind: forward, batch: [1, 8], seq_len: [64, 128]}
techniques:
  - none
  - quantize: {method: int8-weight-only}
"""


def errors_of(text: str, pm) -> list[str]:
    with pytest.raises(SuiteError) as e:
        parse_suite(text, "s.yaml", pm)
    return e.value.lines


def test_good_suite_expands_to_the_matrix(pm):
    suite = parse_suite(GOOD, "s.yaml", pm)
    cells = suite.cells(pm)
    assert len(cells) == 2 * 2 * 2  # batch x seq_len x techniques
    assert len({c["key"] for c in cells}) == len(cells)
    assert {(c["workload"]["batch"], c["workload"]["seq_len"]) for c in cells} == {(1, 64), (1, 128), (8, 64), (8, 128)}
    assert suite.baseline.label == "none"


def test_cell_keys_are_stable_and_change_with_config(pm):
    a = parse_suite(GOOD, "s.yaml", pm).cells(pm)
    b = parse_suite(GOOD, "other-name.yaml", pm).cells(pm)
    assert [c["key"] for c in a] == [c["key"] for c in b]
    c = parse_suite(GOOD.replace("seq_len: [64, 128]", "seq_len: [64, 256]"), "s.yaml", pm).cells(pm)
    assert {x["key"] for x in a} != {x["key"] for x in c}
    # how many rounds a cell gets is not what it measures: extend_s keeps the keys, settle_s does not
    d = parse_suite(GOOD + "measure: {extend_s: 600}\n", "s.yaml", pm).cells(pm)
    assert [x["key"] for x in d] == [x["key"] for x in a] and d[0]["measure"]["extend_s"] == 600
    e = parse_suite(GOOD + "measure: {settle_s: 6}\n", "s.yaml", pm).cells(pm)
    assert {x["key"] for x in e}.isdisjoint(x["key"] for x in a)


def test_typo_in_technique_says_did_you_mean_with_line(pm):
    lines = errors_of(GOOD.replace("quantize:", "quantise:"), pm)
    available = ", ".join(pm.techniques().names())
    assert lines == [f"s.yaml:7: unknown technique 'quantise' (did you mean 'quantize'?); available: {available}"]


def test_unknown_backend_metric_and_param_value(pm):
    text = GOOD.replace("backend: cpu", "backend: cpux").replace("int8-weight-only", "int8-weightonly")
    text += "measure: {metrics: [latency, acuracy]}\n"
    lines = errors_of(text, pm)
    assert f"s.yaml:3: unknown backend 'cpux' (did you mean 'cpu'?); available: {', '.join(pm.backends().names())}" in lines
    assert any(line.startswith("s.yaml:7: technique 'quantize': method='int8-weightonly' is not one of") and "did you mean 'int8-weight-only'" in line for line in lines)
    assert any(line.startswith("s.yaml:8: unknown metric 'acuracy' (did you mean 'accuracy'?)") for line in lines)


def test_unknown_key_and_wrong_type(pm):
    text = GOOD.replace("workload: {kind: forward, batch: [1, 8]", "workload: {kind: forward, batch: eight").replace("backend: cpu", "backend: cpu\nthreds: 2")
    lines = errors_of(text, pm)
    assert "s.yaml:4: unknown key 'threds' (did you mean 'threads'?)" in lines
    assert any(line.startswith("s.yaml:5: workload.batch:") and "'eight'" in line for line in lines)


def test_unknown_technique_parameter(pm):
    lines = errors_of(GOOD.replace("{method: int8-weight-only}", "{methd: int8-weight-only}"), pm)
    assert lines == ["s.yaml:7: unknown parameter 'methd' for technique 'quantize' (did you mean 'method'?); parameters: method"]


def test_malformed_yaml_names_file_and_line(pm):
    lines = errors_of("name: x\ntechniques:\n  - none\n  - quantize: {method: [int8\n", pm)
    assert len(lines) == 1 and lines[0].startswith("s.yaml:") and "malformed YAML" in lines[0]


def test_unclosed_bracket_names_where_it_was_opened(pm):
    lines = errors_of("name: x\nmodel: {source: reference, size: tiny\ntechniques: [none]\n", pm)
    assert lines == ["s.yaml:3: malformed YAML: expected ',' or '}', but got ':' (flow mapping opened on line 2)"]


def test_duplicate_keys_are_errors(pm):
    lines = errors_of("name: x\nbackend: cpu\nbackend: cuda\ntechniques: [none]\n", pm)
    assert lines == ["s.yaml:3: duplicate key 'backend'"]


def test_non_mapping_and_empty(pm):
    assert errors_of("- a\n- b\n", pm)[0].startswith("s.yaml:1: a suite is a mapping")
    assert errors_of("", pm) == ["s.yaml:1: the suite is empty"]


def test_missing_required_and_precision_format(pm):
    lines = errors_of("name: x\nmeasure: {precision: 1}\n", pm)
    assert "s.yaml:1: missing required key 'techniques'" in lines
    assert "s.yaml:2: measure.precision: expected a percentage such as '1%', got 1" in lines


def test_baseline_is_added_when_not_listed(pm):
    suite = parse_suite(GOOD.replace("  - none\n", ""), "s.yaml", pm)
    assert [t.label for t in suite.techniques] == ["none", "int8-weight-only"]


def test_unknown_baseline(pm):
    lines = errors_of(GOOD + "baseline: int8\n", pm)
    assert any("baseline 'int8' is neither" in line for line in lines)


def test_safe_load_refuses_python_tags(pm):
    lines = errors_of("name: !!python/object/apply:os.system ['echo hi']\ntechniques: [none]\n", pm)
    assert lines and lines[0].startswith("s.yaml:1: malformed YAML")


def test_json_schema_accepts_shipped_suites_and_knows_techniques(pm, tmp_path):
    from pathlib import Path

    schema = json_schema(pm)
    jsonschema.Draft202012Validator.check_schema(schema)
    suites = sorted(Path(__file__).parents[1].joinpath("suites").glob("*.yaml"))
    assert suites
    for p in suites:
        jsonschema.validate(yaml.safe_load(p.read_text()), schema)
        load_suite(p, pm)
    bad = yaml.safe_load(GOOD.replace("int8-weight-only", "int3"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_validate_cli(write_suite, pm):
    ok = cli("validate", str(write_suite(GOOD)))
    assert ok.returncode == 0 and "ok (8 cells" in ok.stdout
    bad = cli("validate", str(write_suite(GOOD.replace("quantize:", "quantise:"), "bad.yaml")))
    assert bad.returncode == 2
    available = ", ".join(pm.techniques().names())
    assert bad.stderr.strip().endswith(f"bad.yaml:7: unknown technique 'quantise' (did you mean 'quantize'?); available: {available}")
    assert "Traceback" not in bad.stderr
    missing = cli("validate", "no-such-suite.yaml")
    assert missing.returncode == 2 and "no-such-suite.yaml:0: cannot read suite" in missing.stderr


def test_schema_cli_prints_json():
    out = cli("schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert "quantize" in json.dumps(schema["properties"]["techniques"])
