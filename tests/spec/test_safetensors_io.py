"""Our NumPy-only safetensors reader/writer against the reference library, both ways."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ttaccel.spec.safetensors_io import SafetensorsError, load_safetensors, save_safetensors

safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="reference library absent")

DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8]
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)
tensor_dicts = st.dictionaries(st.text("abc.xyz", min_size=1, max_size=6), arrays, max_size=4)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=30)
@given(tensor_dicts)
def test_reference_reads_ours(tmp_path, tensors):
    path = tmp_path / "ours.safetensors"
    save_safetensors(path, tensors, {"k": "v"})
    theirs = safetensors_numpy.load_file(str(path))
    assert theirs.keys() == tensors.keys()
    for name, array in tensors.items():
        assert theirs[name].dtype == array.dtype
        assert np.array_equal(theirs[name], array, equal_nan=array.dtype.kind == "f")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=30)
@given(tensor_dicts)
def test_we_read_the_reference(tmp_path, tensors):
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata={"m": "1"})
    ours, metadata = load_safetensors(path)
    assert metadata == {"m": "1"}
    for name, array in tensors.items():
        assert ours[name].dtype == array.dtype
        assert np.array_equal(ours[name], array, equal_nan=array.dtype.kind == "f")


def test_malformed_files(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x04\x00\x00\x00\x00\x00\x00\x00{x}!")
    with pytest.raises(SafetensorsError, match="not valid JSON"):
        load_safetensors(path)
    path.write_bytes(b"\x02")
    with pytest.raises(SafetensorsError, match="truncated"):
        load_safetensors(path)
