"""How far one training-time dropout draw moves a predicted mean: the noise a ranking term sees if it compares the
scores of a training step.

For each of the six photos of bench/photo_ladder.py (centre crop, the evaluation transform), the head's Dropout is
drawn DRAWS times on the same backbone features; prints the evaluated mean score, the std of the drawn means, and the
std of the difference between two independent draws of one image: what separates two items of a ranking pair that
differ only by their masks. The ranking terms' margins are 0.2 and less (``--ranking-margin``), hence
``NIMA.forward_with_deterministic``.

    python bench/dropout_noise.py CHECKPOINT [--draws 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_ladder import photos  # noqa: E402


def main() -> None:
    import torch

    from pynima.model.network import load_checkpoint, mean_score, normalization
    from pynima.training.items import transforms

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a pynima training checkpoint (best.ckpt)")
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    net, meta = load_checkpoint(args.checkpoint)
    net.eval()
    evaluate = transforms(*normalization(meta["backbone"]), train=False)
    names, images = zip(*photos().items(), strict=True)
    x = torch.stack([evaluate(torch.from_numpy(im).permute(2, 0, 1)) for im in images])
    torch.manual_seed(0)
    with torch.no_grad():
        features = net.backbone(x)
        evaluated = mean_score(torch.softmax(net.head[-1](features), -1))
        net.head[0].train()  # the head's dropout as a training step draws it
        drawn = torch.stack([mean_score(torch.softmax(net.head(features), -1)) for _ in range(args.draws)])
    half = args.draws // 2
    pair = (drawn[:half] - drawn[half : 2 * half]).std(0)
    print(f"{'photo':22s} {'evaluated':>9s} {'draw std':>9s} {'two-draw diff std':>18s}")
    for k, name in enumerate(names):
        print(f"{name:22s} {evaluated[k].item():9.2f} {drawn[:, k].std().item():9.3f} {pair[k].item():18.3f}")
    print(f"median two-draw difference std: {pair.median().item():.3f} (dropout p={net.head[0].p})")


if __name__ == "__main__":
    main()
