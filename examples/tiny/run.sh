#!/usr/bin/env bash
# Build the tiny models (once) and run the whole pipeline on them: seconds on 2 cores, offline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
python "$here/build.py" >/dev/null
tuneshift run "$here/config.toml" --out "${1:-runs/tiny}"
