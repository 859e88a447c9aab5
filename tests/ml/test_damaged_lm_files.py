"""Loading trusts nothing it reads (issue 21, item 6): truncated, bit-flipped or crafted LM
files and component weights are refused with a ValueError that names the file and what
disagrees; never a MemoryError, a raw msgpack or torch error, or silently wrong numbers."""

import random
import re
import time
from io import BytesIO

import pytest
import spacy
import srsly
import torch

from spacy_lmcrf.ml.modules.char_lm import BiCharLM
from spacy_lmcrf.ml.modules.tensor_file import FORMAT, read_tensor_file, write_tensor_file
from spacy_lmcrf.ml.modules.word_lm import BiWordLM
from spacy_lmcrf.ml.modules.word_vocab import EOS
from spacy_lmcrf.ml.torch_bridge import deserialize_torch_module, serialize_torch_module

from ..util import save_tiny_char_lm, save_tiny_word_lm

HIDDEN = 12
PROJECTION = 6
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def char_lm_path(tmp_path_factory):
    return save_tiny_char_lm(tmp_path_factory.mktemp("charlm") / "char_lm.msgpack", HIDDEN)


@pytest.fixture(scope="module")
def word_lm_path(tmp_path_factory):
    return save_tiny_word_lm(tmp_path_factory.mktemp("wordlm") / "word_lm.msgpack", PROJECTION)


def names(path):
    """A pytest.raises match for an error that names path."""
    return re.escape(str(path))


def same_contents(path, original):
    """Whether the file at path still reads as exactly what original (a path) holds."""
    (tensors, meta), (want, want_meta) = read_tensor_file(path), read_tensor_file(original)
    return (
        meta == want_meta
        and tensors.keys() == want.keys()
        and all(
            tensors[k].dtype == want[k].dtype and torch.equal(tensors[k], want[k]) for k in want
        )
    )


@pytest.mark.parametrize("lm", ["char", "word"])
def test_intact_files_load_and_carry_a_checksum(lm, char_lm_path, word_lm_path):
    path, cls = (char_lm_path, BiCharLM) if lm == "char" else (word_lm_path, BiWordLM)
    msg = srsly.msgpack_loads(path.read_bytes())
    assert isinstance(msg["sha256"], str) and "sha256" not in msg["meta"]
    model = cls.load(path)
    assert model.training_info == {"step": 0}


def test_files_without_a_checksum_still_load(char_lm_path, tmp_path):
    msg = srsly.msgpack_loads(char_lm_path.read_bytes())
    del msg["sha256"]
    old = tmp_path / "old.msgpack"
    old.write_bytes(srsly.msgpack_dumps(msg))
    assert same_contents(old, char_lm_path)
    BiCharLM.load(old)


@pytest.mark.parametrize("lm", ["char", "word"])
def test_truncated_at_any_byte(lm, char_lm_path, word_lm_path, tmp_path):
    path, cls = (char_lm_path, BiCharLM) if lm == "char" else (word_lm_path, BiWordLM)
    data = path.read_bytes()
    cuts = [0, 1, len(data) // 2, len(data) - 1] + random.Random(0).sample(range(len(data)), 60)
    cut_path = tmp_path / "cut.msgpack"
    for cut in cuts:
        cut_path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=names(cut_path)):
            cls.load(cut_path)


@pytest.mark.slow
@pytest.mark.parametrize("lm", ["char", "word"])
def test_flipped_bits_are_refused_never_loaded_wrong(lm, char_lm_path, word_lm_path, tmp_path):
    path, cls = (char_lm_path, BiCharLM) if lm == "char" else (word_lm_path, BiWordLM)
    data = path.read_bytes()
    rng = random.Random(1)
    flipped = tmp_path / "flipped.msgpack"
    refused = 0
    for _ in range(80):
        damaged = bytearray(data)
        damaged[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        flipped.write_bytes(bytes(damaged))
        try:
            cls.load(flipped)
        except ValueError as err:
            assert str(flipped) in str(err)
            refused += 1
        else:  # only a flip the file survives intact (a key's name, say) may load
            assert same_contents(flipped, path)
    assert refused >= 75
    # flips in the tensor data itself, where only the checksum can tell
    start = data.index(b"decoder.weight")
    for position in random.Random(2).sample(range(start, len(data) - 80), 20):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        flipped.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match=names(flipped)):
            cls.load(flipped)


def crafted(tensors, meta=None, **top):
    msg = {"format": FORMAT, "meta": {} if meta is None else meta, "tensors": tensors, **top}
    return srsly.msgpack_dumps(msg)


def test_a_200_byte_header_cannot_ask_for_terabytes(tmp_path):
    path = tmp_path / "huge.msgpack"
    entry = {"dtype": "float32", "shape": [10**7, 10**7], "data": bytes(88)}
    path.write_bytes(crafted({"forward_lm.embed.weight": entry}))
    assert len(path.read_bytes()) <= 200
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        read_tensor_file(path)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    for part in (
        str(path),
        "forward_lm.embed.weight",
        "(10000000, 10000000)",
        "400,000,000,000,000 bytes",
        "holds 88",
    ):
        assert part in message


@pytest.mark.parametrize(
    "data,what",
    [
        (
            crafted({"w": {"dtype": "float32", "shape": [2**62, 2**62, 2**62], "data": b""}}),
            "needs",
        ),
        (
            crafted({"w": {"dtype": "float32", "shape": [-1, 4], "data": bytes(16)}}),
            "invalid shape",
        ),
        (
            crafted({"w": {"dtype": "float32", "shape": [-2, -2], "data": bytes(16)}}),
            "invalid shape",
        ),
        (
            crafted({"w": {"dtype": "float32", "shape": [True, 4], "data": bytes(16)}}),
            "invalid shape",
        ),
        (crafted({"w": {"dtype": "float32", "shape": ["4"], "data": bytes(16)}}), "invalid shape"),
        (crafted({"w": {"dtype": "float32", "shape": 4, "data": bytes(16)}}), "'shape'"),
        (crafted({"w": {"dtype": "float32", "shape": [4]}}), "'data'"),
        (crafted({"w": {"shape": [4], "data": bytes(16)}}), "'dtype'"),
        (crafted({"w": {"dtype": "object", "shape": [1], "data": b"cos\nsystem\n"}}), "dtype"),
        (crafted({"w": [1, 2, 3]}), "not a named map"),
        (crafted({7: {"dtype": "float32", "shape": [0], "data": b""}}), "not a named map"),
        (crafted([]), "'tensors'"),
        (crafted({}, meta=[1, 2]), "'meta'"),
        (crafted({}, sha256=b"\x00" * 32), "checksum"),
        (crafted({}, sha256="0" * 64), "checksum"),
        (srsly.msgpack_dumps([FORMAT]), "not a spacy_lmcrf tensor file"),
        (srsly.msgpack_dumps({"format": "other"}), "not a spacy_lmcrf tensor file"),
        (b"\x80\x04\x95", "not a spacy_lmcrf tensor file"),
        (b"\xdd\xff\xff\xff\xff", "truncated or damaged"),
    ],
)
def test_malformed_entries_are_named(data, what, tmp_path):
    path = tmp_path / "bad.msgpack"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=names(path)) as info:
        read_tensor_file(path)
    assert what in str(info.value)


def rewrite_meta(path, out, **changes):
    """The file at path, rewritten to out with meta changes (and a valid checksum)."""
    tensors, meta = read_tensor_file(path)
    write_tensor_file(out, tensors, {**meta, **changes})
    return out


@pytest.mark.parametrize(
    "changes,what",
    [
        ({"hidden_size": 2**22}, "lstm.weight_ih_l0"),  # 64 TB of LSTM weights, if built
        ({"embedding_size": 7}, "embed.weight"),
        ({"num_layers": 3}, "missing"),
        ({"num_layers": 1}, "unexpected"),
        ({"chars": list("abc")}, "embed.weight"),
        ({"hidden_size": 2**40}, "no buildable model"),  # too big even for torch's meta device
        ({"hidden_size": 2**64 - 1}, "no buildable model"),
        ({"hidden_size": "12"}, "'hidden_size' is '12'"),
        ({"hidden_size": 0}, "'hidden_size' is 0"),
        ({"dropout": 2.0}, "'dropout'"),
        ({"chars": ["ab"]}, "'chars'"),
        ({"chars": None}, "'chars'"),
        ({"kind": "word_lm"}, "not a character LM"),
    ],
)
def test_char_lm_meta_that_disagrees_with_its_tensors(changes, what, char_lm_path, tmp_path):
    out = rewrite_meta(char_lm_path, tmp_path / "changed.msgpack", **changes)
    with pytest.raises(ValueError, match=names(out)) as info:
        BiCharLM.load(out)
    assert what in str(info.value)


@pytest.mark.parametrize(
    "changes,what",
    [
        ({"hidden_size": 2**22}, "lstm.weight_ih_l0"),
        ({"projection_size": 0}, "weight_hr_l0"),
        ({"projection_size": 20}, "projection_size must be"),
        ({"words": [EOS, "a", "b"]}, "embed.weight"),
        ({"words": ["a", "b"]}, EOS),
        ({"words": ["a", "a"]}, "WordVocab"),
        ({"cutoffs": [3]}, "softmax"),
        ({"cutoffs": ["3"]}, "'cutoffs'"),
        ({"num_layers": 3}, "missing"),
    ],
)
def test_word_lm_meta_that_disagrees_with_its_tensors(changes, what, word_lm_path, tmp_path):
    out = rewrite_meta(word_lm_path, tmp_path / "changed.msgpack", **changes)
    with pytest.raises(ValueError, match=names(out)) as info:
        BiWordLM.load(out)
    assert what in str(info.value)


def test_meta_that_is_not_a_map(char_lm_path):
    tensors, _ = read_tensor_file(char_lm_path)
    with pytest.raises(ValueError, match="metadata is list, not a map"):
        BiCharLM.from_tensors(tensors, ["char_lm"], "x.msgpack")


CSE = {"@architectures": "spacy_lmcrf.ContextualStringEmbeddings.v1", "hidden_size": HIDDEN}
BILM = {"@architectures": "spacy_lmcrf.BiLMEmbeddings.v1", "output_size": PROJECTION}


@pytest.mark.parametrize("arch,lm", [(CSE, "char"), (BILM, "word")])
def test_embedding_layers_name_the_damaged_lm_file(arch, lm, char_lm_path, word_lm_path, tmp_path):
    path = char_lm_path if lm == "char" else word_lm_path
    cut = tmp_path / "cut.msgpack"
    cut.write_bytes(path.read_bytes()[:-100])
    model = spacy.util.registry.resolve({"m": {**arch, "lm_path": str(cut)}})["m"]
    with pytest.raises(ValueError, match=names(cut)):
        model.initialize()


def small_module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LSTM(16, 4))


def fresh_module():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LSTM(16, 4))


def test_torch_weights_round_trip_and_old_bytes_still_load():
    module = small_module()
    loaded = deserialize_torch_module(fresh_module(), serialize_torch_module(module), CPU)
    for a, b in zip(module.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    buffer = BytesIO()
    torch.save(module.state_dict(), buffer)  # what serialize_torch_module wrote before
    loaded = deserialize_torch_module(fresh_module(), buffer.getvalue(), CPU)
    assert torch.equal(loaded[0].weight, module[0].weight)


def test_truncated_or_flipped_torch_weights_are_refused():
    data = serialize_torch_module(small_module())
    rng = random.Random(3)
    for cut in [0, 10, len(data) - 1] + rng.sample(range(len(data)), 40):
        with pytest.raises(ValueError, match="damaged or truncated"):
            deserialize_torch_module(fresh_module(), data[:cut], CPU)
    for _ in range(40):
        damaged = bytearray(data)
        damaged[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        with pytest.raises(ValueError, match="damaged"):
            deserialize_torch_module(fresh_module(), bytes(damaged), CPU)


def test_torch_weights_that_do_not_fit_the_module():
    data = serialize_torch_module(torch.nn.Linear(8, 3))
    with pytest.raises(ValueError, match="do not fit Linear"):
        deserialize_torch_module(torch.nn.Linear(8, 4), data, CPU)
