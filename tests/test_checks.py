"""The shared checks: scales, devices and schema error messages."""
import numpy as np
import pytest
import torch

from msnlan.checks import check_scale, resolve_device, schema_error_message, schema_errors, validate_with_schema
from msnlan.errors import ConfigError, DataError


def test_check_scale_supported_and_positive():
    assert check_scale(3) == 3 and check_scale(np.int64(4)) == 4 and check_scale(2.0) == 2
    for bad in (5, 1, True, "2", None):
        with pytest.raises(ConfigError, match=r"scale .* is not one of 2, 3, 4"):
            check_scale(bad)
    assert check_scale(8, supported=None) == 8
    for bad in (0, -2, 2.5, True, "3"):
        with pytest.raises(DataError, match="--scale must be a positive integer"):
            check_scale(bad, supported=None, error=DataError, what="--scale")


def test_resolve_device_refuses_what_the_suite_cannot_run_on():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    for bad in ("mps", "gpu0", "cuda:x", 3):
        with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    # without `present` only the form counts: a plan may name a GPU this machine lacks
    assert resolve_device("cuda:7", present=False) == torch.device("cuda:7")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


SCHEMA = {"type": "object", "additionalProperties": False, "required": ["a"],
          "properties": {"a": {"enum": [1, 2]},
                         "b": {"type": "object", "additionalProperties": False,
                               "properties": {"c": {"type": "integer"}}}}}


@pytest.mark.parametrize("data, message", [
    ({"a": 1, "x": 0}, "unknown key 'x' (allowed here: a, b)"),
    ({"a": 1, "b": {"d": 0}}, "unknown key 'b.d' (allowed here: c)"),
    ({}, "missing key(s) 'a'"),
    ({"a": 3}, "key 'a': 3 is not one of [1, 2]"),
    ({"a": 1, "b": {"c": "no"}}, "key 'b.c': 'no' is not of type 'integer'"),
])
def test_schema_error_messages_name_the_key(data, message):
    assert schema_error_message(schema_errors(SCHEMA, data)[0]) == message
    with pytest.raises(ConfigError) as exc:
        validate_with_schema(SCHEMA, data, "some.yaml")
    assert str(exc.value) == f"some.yaml: {message}"
