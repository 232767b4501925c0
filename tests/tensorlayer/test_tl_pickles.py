"""The restricted unpickler: arrays, dtypes and plain values load; anything else is refused by name, unrun."""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest

from tensordb_core.errors import TensorDBError, UnsafeOperation
from tensordb_core.tensorlayer.pickles import RefusedPickle, load_arrays


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/tensordb-pwned",))


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_what_tensorlayer_pickled_loads(protocol: int) -> None:
    value = {
        "params": [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(2, dtype=np.int64)],
        "scalar": np.float64(0.5), "dtype": np.dtype("<f4"), "nested": ((1, 2.5), {"a": None}, [True, "x", b"raw"]),
        "ordered": collections.OrderedDict(a=1), "complex": 1 + 2j, "set": {1, 2},
        "fortran": np.asfortranarray(np.arange(4.0).reshape(2, 2)),
    }
    out = load_arrays(pickle.dumps(value, protocol=protocol), "Params/1")
    assert np.array_equal(out["params"][0], value["params"][0]) and out["params"][0].dtype == np.float32
    assert out["scalar"] == 0.5 and out["dtype"] == np.dtype("<f4") and out["nested"] == value["nested"]
    assert out["ordered"] == {"a": 1} and out["complex"] == 1 + 2j and out["set"] == {1, 2}
    assert np.array_equal(out["fortran"], value["fortran"])


@pytest.mark.parametrize("payload", [Evil(), [np.ones(2), Evil()], {"x": pickle.loads}, collections.Counter("ab")])
def test_anything_else_is_refused_naming_the_document(payload, tmp_path) -> None:
    with pytest.raises(RefusedPickle, match=r"^Params/abc: the pickle references") as err:
        load_arrays(pickle.dumps(payload, protocol=2), "Params/abc")
    assert isinstance(err.value, UnsafeOperation) and isinstance(err.value, TensorDBError)
    assert not os.path.exists("/tmp/tensordb-pwned")


def test_codecs_encode_only_spells_bytes() -> None:
    assert load_arrays(pickle.dumps(b"\x00\xff", protocol=2), "x") == b"\x00\xff"
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    with pytest.raises(RefusedPickle, match="not a readable pickle"):
        load_arrays(crafted, "x")


def test_corrupt_bytes_are_a_typed_error() -> None:
    with pytest.raises(RefusedPickle, match="Dataset/7: not a readable pickle"):
        load_arrays(pickle.dumps([np.ones(3)], protocol=2)[:-5], "Dataset/7")
