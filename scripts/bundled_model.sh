#!/usr/bin/env bash
# Make src/pynima/nima-tid2013-lite0.onnx, the model pynima scores with when no model is given
# (docs/model-card.md says what it is and how well it does).
#
#     bash scripts/bundled_model.sh [SHARED_DATA]     # default ../shared/data; about 45 min on a 2-core CPU
#
# Needs the 49 pristine photographs, the Kodak images of TID2013's references 01-19 and TID2013's label files
# (research and education use only). Runs and datasets go to data/ and runs/ (ignored by git); existing runs are
# refused by pynima train, so a second invocation needs those folders removed first. Only the exported file is
# meant to be committed.
set -euo pipefail
SHARED=${1:-../shared/data}
PYNIMA=${PYNIMA:-.venv/bin/pynima}
OUT=src/pynima/nima-tid2013-lite0.onnx

# 1. pretraining data: 49 photographs x 24 distortions x 5 levels, labelled by FSIMc mapped to TID2013's scale
"$PYNIMA" synth data/pristine-pseudo --refs "$SHARED/pristine"
# 2. pretraining, paid once: 3 epochs on 44 photographs' distortions, validation on the other 5
"$PYNIMA" train data/pristine-pseudo --out runs/pretrain-pristine --ratios 0.9 0.1 0 --epochs 3 --seed 0 --quiet \
    --recipe paper
# 3. the human labels: TID2013's references 01-19 re-synthesized from their Kodak sources
"$PYNIMA" synth data/tid2013-resynth --refs "$SHARED/kodak" \
    --mos-table "$SHARED/tid2013-labels/mos_with_names.txt" --std-table "$SHARED/tid2013-labels/mos_std.txt"
# 4. fine-tuning on all 19 references (no test part: the benchmark in docs/results.md measures the recipe)
"$PYNIMA" train data/tid2013-resynth --init runs/pretrain-pristine/best.ckpt --ratios 0.85 0.15 0 --epochs 6 \
    --recipe paper \
    --seed 0 --out runs/bundled --quiet
# 5. export, with what the model is in its metadata
"$PYNIMA" export runs/bundled/best.ckpt --out "$OUT" \
    --metadata name=nima-tid2013-lite0 \
    --metadata model_version=1 \
    --metadata data="re-synthesized TID2013 references 01-19 (Kodak sources, TID2013 human MOS); pretrained on FSIMc pseudo-labels of 49 photographs" \
    --metadata labels_licence="TID2013 labels: research and education use only" \
    --metadata not_for="authentic camera distortions, aesthetics: it has seen only TID2013's 24 synthetic distortion types" \
    --metadata card=docs/model-card.md \
    --metadata command=scripts/bundled_model.sh
ls -l "$OUT"
