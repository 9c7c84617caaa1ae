"""Option groups of the scoring commands: pynima predict and pynima serve."""

from __future__ import annotations

import argparse

from pynima.cli.options import positive_int

__all__ = ["CROPS_HELP", "DEVICE_HELP", "add_predict_options", "add_serve_options"]

DEVICE_HELP = (
    "cpu (default), cuda, cuda:N (the onnx engine with onnxruntime-gpu installed, or the torch engine "
    "with a CUDA build of torch) or mps (torch engine); a device this machine lacks is a one-line error"
)

CROPS_HELP = (
    "how an image is scored: centre (one 224x224 crop from its centre), grid (224x224 crops covering it, "
    "distributions averaged) or full (the whole image at native resolution; needs an export made with "
    "dynamic image size, as pynima export writes) (default %(default)s; compared: pynima docs results)"
)


def add_predict_options(p: argparse.ArgumentParser) -> None:
    """pynima predict's options, in groups: the output, Ray, the model."""
    _predict_output(p.add_argument_group("output"))
    _predict_ray(
        p.add_argument_group("Ray", "scoring on a Ray cluster into one Parquet file (pip install 'pynima[ray]')")
    )
    _predict_model(p.add_argument_group("model"))


def _predict_output(g: argparse._ArgumentGroup) -> None:
    """pynima predict: what it writes."""
    from pynima.cli.output import WRITERS

    g.add_argument(
        "--format",
        choices=list(WRITERS),
        default=None,
        help="table (default): mean, std, path; json, jsonl (JSON Lines, one object per image) and csv "
        "add the distribution and the warning and error of each input; every format is written as "
        "the images are scored",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar (it shows only on a terminal anyway)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="images per network batch (default 16)")


def _predict_ray(g: argparse._ArgumentGroup) -> None:
    """pynima predict: scoring on Ray."""
    g.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="score on Ray (pip install 'pynima[ray]') into the Parquet file --out: on a new local "
        "instance or the cluster RAY_ADDRESS names, or on ADDRESS (auto, HOST:PORT, "
        "ray://HOST:PORT); PATHS may then be s3://, gs://... URIs too (pynima docs cluster-scoring)",
    )
    g.add_argument(
        "--out",
        metavar="FILE",
        help="with --ray: the Parquet file to write (path, mean, std, "
        "distribution, warning, error); refused if it exists",
    )
    g.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help="with --ray: scoring actors, one CPU each (default: a pool that grows from 1 while there is "
        "work and there are free CPUs)",
    )


def _predict_model(g: argparse._ArgumentGroup) -> None:
    """pynima predict: the model and how it runs."""
    from pynima.config import CROP_MODES, DEFAULT_CROPS, ENGINES, crop_mode

    g.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="auto",
        help="auto (default): ONNX Runtime for an .onnx file and for a checkpoint with an up-to-date "
        "export next to it (best.onnx, written by pynima train), PyTorch otherwise; openvino runs "
        "the same export on OpenVINO",
    )
    g.add_argument("--device", default="cpu", help=DEVICE_HELP)
    g.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 arithmetic (torch and openvino engines): faster on CPUs with AMX, not bit-equal "
        "(speed and SRCC cost: pynima docs performance)",
    )
    g.add_argument("--crops", type=crop_mode, choices=list(CROP_MODES), default=DEFAULT_CROPS, help=CROPS_HELP)


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """pynima serve's options, in groups: the network, the model, the limits."""
    from dataclasses import asdict

    from pynima.config import Connections, Limits

    limits, connections = asdict(Limits()), asdict(Connections())
    _serve_network(p.add_argument_group("network"))
    _serve_model(p.add_argument_group("model"))
    _serve_limits(
        p.add_argument_group("limits", "what one client may send; over a limit, the request is refused"),
        limits,
        connections,
    )


def _serve_network(g: argparse._ArgumentGroup) -> None:
    """pynima serve: where it listens and whom it answers."""
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    g.add_argument("--port", type=int, default=8000, help="default 8000")
    g.add_argument(
        "--cors",
        nargs="+",
        default=[],
        metavar="ORIGIN",
        help="origins whose pages may call the API (default: none; CORS off, and a POST from a page of "
        "another origin is refused with 403)",
    )
    g.add_argument(
        "--allowed-hosts",
        nargs="+",
        metavar="HOST",
        help="Host headers the server answers to (others: 400), e.g. scores.example.com *.example.com, or "
        "* for any (default: the --host address, with localhost and 127.0.0.1 when it is a loopback "
        "address, and this machine's names and addresses when it is 0.0.0.0)",
    )


def _serve_model(g: argparse._ArgumentGroup) -> None:
    """pynima serve: the model and how requests share its calls."""
    from pynima.config import ENGINES

    g.add_argument("--engine", choices=list(ENGINES), default="auto", help="as pynima predict (default auto)")
    g.add_argument("--device", default="cpu", help=DEVICE_HELP)
    g.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default 1)")
    g.add_argument("--max-batch", type=int, default=32, help="crops per network call at most (default 32)")
    g.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to share its network call (default 5)",
    )


def _serve_limits(g: argparse._ArgumentGroup, limits: dict, connections: dict) -> None:
    """pynima serve: what one client may send."""
    g.add_argument(
        "--max-body-mb",
        type=float,
        default=limits["max_body"] / 2**20,
        help=f"request body limit in MiB (default {limits['max_body'] / 2**20:g})",
    )
    g.add_argument(
        "--max-files",
        type=int,
        default=limits["max_files"],
        help=f"images per request at most (default {limits['max_files']})",
    )
    g.add_argument(
        "--body-timeout",
        type=float,
        default=limits["body_timeout"],
        help=f"seconds a client has to send its request body (default {limits['body_timeout']:g})",
    )
    g.add_argument(
        "--max-request-megapixels",
        type=float,
        default=limits["max_request_pixels"] / 1e6,
        help="decoded pixels (width x height, from the headers) of the images of one request at most, "
        f"in millions; over it, 413 (default {limits['max_request_pixels'] / 1e6:g})",
    )
    g.add_argument(
        "--max-inflight-megapixels",
        type=float,
        default=limits["max_inflight_pixels"] / 1e6,
        help="decoded pixels of all requests in flight at most, in millions (about 10 bytes of memory "
        f"each); over it, 503 with Retry-After (default {limits['max_inflight_pixels'] / 1e6:g})",
    )
    g.add_argument(
        "--max-connections",
        type=int,
        default=connections["max_connections"],
        help=f"open connections at most, per process; beyond it, 503 (default {connections['max_connections']})",
    )
    g.add_argument(
        "--header-timeout",
        type=float,
        default=connections["header_timeout"],
        help="seconds a client has to send each request's headers; then 408 and the connection is closed "
        f"(default {connections['header_timeout']:g})",
    )
    g.add_argument(
        "--keep-alive",
        type=float,
        default=connections["keep_alive"],
        help=f"seconds an idle connection is kept open (default {connections['keep_alive']:g})",
    )
