"""What the CPU gives the kernels LM-LSTM-CRF is made of: the ceiling its speed is judged by.

    python benchmarks/scripts/kernels.py [--threads 2] [--output kernels.json]

* matmul: a 1024 x 1024 product, GFLOP/s (the machine's practical peak);
* lstm: torch.nn.LSTM(30, 300) (the paper's character LSTM) over B streams of C characters,
  forward + backward and forward only (training), and in inference mode, oneDNN and torch's
  own implementation, GFLOP/s of the useful arithmetic (4 x 300 x 330 multiply-adds a step);
* int8: the same LSTM quantised with torch.ao's dynamic quantisation, inference, ms a batch;
* dropout: forward + backward of one training step's dropouts (LM-LSTM-CRF's shapes for 10
  sentences), torch.nn.Dropout against spacy_lmcrf's Dropout, ms.

Run it on an otherwise idle machine.
"""

import argparse
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from common import provenance, write_json

from spacy_lmcrf.ml.modules.dropout import Dropout

CHAR_DIM, HIDDEN = 30, 300
# (sentences x characters x width) of one LM-LSTM-CRF training step's dropouts, 10 sentences
DROPOUT_SHAPES = [(10, 90, 30), (10, 90, 30), (170, 1200), (10, 17, 650), (10, 17, 300)]


def seconds(run: Callable[[], Any], repeats: int) -> float:
    for _ in range(2):
        run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def lstm_rows(repeats: int) -> List[Dict[str, Any]]:
    return [
        row
        for batch, chars in ((10, 150), (32, 120), (64, 120))
        for row in lstm_shape(batch, chars, repeats)
    ]


def lstm_shape(batch: int, chars: int, repeats: int) -> List[Dict[str, Any]]:
    lstm = torch.nn.LSTM(CHAR_DIM, HIDDEN, batch_first=True)
    x = torch.randn(batch, chars, CHAR_DIM, requires_grad=True)
    flop = 2 * batch * chars * 4 * HIDDEN * (CHAR_DIM + HIDDEN)

    def train() -> None:
        lstm(x)[0].sum().backward()

    def infer() -> None:
        with torch.inference_mode():
            lstm(x)

    rows = []
    for onednn in (True, False):
        with torch.backends.mkldnn.flags(enabled=onednn):
            fwd_bwd = seconds(train, repeats)
            fwd = seconds(infer, repeats)
        rows.append(
            {
                "batch": batch,
                "chars": chars,
                "onednn": onednn,
                "train_gflops": round(3 * flop / fwd_bwd / 1e9, 1),
                "infer_gflops": round(flop / fwd / 1e9, 1),
                "infer_ms": round(fwd * 1e3, 2),
            }
        )
    quantized = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(lstm.eval()), {torch.nn.LSTM}, dtype=torch.qint8
    )
    x_infer = x.detach()

    def infer_int8() -> None:
        with torch.inference_mode():
            quantized(x_infer)

    int8 = seconds(infer_int8, repeats)
    rows.append({"batch": batch, "chars": chars, "int8_dynamic_infer_ms": round(int8 * 1e3, 2)})
    return rows


def dropout_ms(make: Callable[[], torch.nn.Module], repeats: int) -> float:
    layers = [make() for _ in DROPOUT_SHAPES]
    xs = [torch.randn(*shape, requires_grad=True) for shape in DROPOUT_SHAPES]

    def step() -> None:
        sum(layer(x).sum() for layer, x in zip(layers, xs)).backward()

    return round(seconds(step, repeats) * 1e3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    matmul = seconds(lambda: a @ b, 5 * args.repeats)
    result: Dict[str, Optional[Any]] = {
        **provenance(),
        "threads": args.threads,
        "matmul_gflops": round(2 * 1024**3 / matmul / 1e9, 1),
        "lstm": lstm_rows(args.repeats),
        "dropout_step_ms": {
            "torch.nn.Dropout": dropout_ms(lambda: torch.nn.Dropout(0.5), 20 * args.repeats),
            "spacy_lmcrf Dropout": dropout_ms(lambda: Dropout(0.5), 20 * args.repeats),
        },
    }
    for key, value in result.items():
        print(key, value)
    if args.output:
        write_json(args.output, result)


if __name__ == "__main__":
    main()
