#!/usr/bin/env bash
# Which recipe for the grown Model 3 reaches Model 3 from scratch's best val acc with at most
# half of scratch's training FLOPs (issue 12)? Trains the chain of configs/experiment.toml
# (Model 1 -> grown Model 2 -> grown Model 3, and scratch Model 3; seeds 0-2), then grows Model 3
# again from the same grown Model 2 checkpoints under each recipe below, every seed at once.
# Each recipe's results.md compares it with the same scratch runs (copied, not retrained). The
# runs' output goes to logs in the sweep folder; the script prints one table.
#
#   scripts/grow-recipe-sweep.sh DATA [FLAGS...]
#   scripts/grow-recipe-sweep.sh dataset              # ~5 min on an H200
#   scripts/grow-recipe-sweep.sh dataset --limit 32 --epochs 2   # plumbing only
#
# Run from anywhere; GPU_CNN (default target/release/gpu-cnn) is the binary and SWEEP (default
# checkpoints/sweep) the output folder, both relative to the repository. On a lent machine,
# build here and carry the binary, and give the data's path there. Reruns keep finished runs,
# as `gpu-cnn experiment` does: to change a recipe, give it a new name.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,16p' "$0"; exit 2; }
data=$(realpath "$1")
shift
cd "$(dirname "$0")/.." # paths below are the repository's
bin=${GPU_CNN:-target/release/gpu-cnn}
sweep=${SWEEP:-checkpoints/sweep}
base=checkpoints/experiment # configs/experiment.toml's out
seeds=(0 1 2)               # configs/experiment.toml's seeds

# name | settings of the grown Model 3 stage, besides the base chain's own (its grow arm: the
# copied layers frozen for 5 epochs, then everything; model3.toml's cosine from 1e-3 with a
# one-epoch warm-up)
recipes=(
  'all|'
  'unfreeze1|freeze = ["copied"], unfreeze_after = 1'
  'unfreeze2|freeze = ["copied"], unfreeze_after = 2'
  'all-lr5e-4|learning_rate = 0.0005'
  'all-lr2e-3|learning_rate = 0.002'
  'all-nowarmup|schedule = { type = "cosine" }'
)

# Background jobs of a script ignore Ctrl-C (and gpu-cnn keeps an ignored signal ignored):
# stopping the script stops them, with a resumable checkpoint each.
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' INT TERM
in_parallel() { # runs "$@" --seed S for every seed at once; waits for all, fails if any failed
    local rc=0
    pids=()
    for s in "${seeds[@]}"; do "$@" --seed "$s" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=$?; done
    pids=()
    return "$rc"
}

mkdir -p "$sweep"
in_parallel "$bin" experiment configs/experiment.toml --data "$data" "$@" > "$sweep/base.log" 2>&1 ||
    { echo "the base chain failed: see $sweep/base.log" >&2; exit 1; }
for recipe in "${recipes[@]}"; do
    name=${recipe%%|*}
    settings=${recipe#*|}
    cat > "$sweep/$name.toml" <<TOML
stages = [
  { config = "configs/model2.toml", checkpoint = "$base/seed-{seed}/grow/2-model2/best.safetensors" },
  { config = "configs/model3.toml"${settings:+, $settings} },
]
strategies = ["grow"]
seeds = [$(IFS=,; echo "${seeds[*]}")]
epochs = 10
out = "$sweep/$name"
TOML
    for s in "${seeds[@]}"; do
        scratch=$sweep/$name/seed-$s/scratch/2-model3
        if [ ! -f "$scratch/last.safetensors" ]; then
            rm -rf "$scratch" "$scratch.tmp"
            mkdir -p "$(dirname "$scratch")"
            cp -r "$base/seed-$s/scratch/3-model3" "$scratch.tmp" && mv "$scratch.tmp" "$scratch"
        fi
    done
    in_parallel "$bin" experiment "$sweep/$name.toml" --data "$data" --arm grow "$@" > "$sweep/$name.log" 2>&1 ||
        { echo "recipe $name failed: see $sweep/$name.log" >&2; exit 1; }
done

# One table: every recipe's grow arm over the seeds (the flags say which runs count as
# finished). Compare "from the growth" only: a recipe's totals count Model 2's run up to its
# best epoch (the history its checkpoint holds) and not Model 1's.
"$bin" experiment configs/experiment.toml --report "$@" > /dev/null
echo "| recipe $(grep -m1 '^| arm ' "$base/results.md")"
echo "|---$(grep -m1 '^|---' "$base/results.md")"
sed -n 's/^| \(grow\|scratch\) |/| frozen 5 epochs (base) | \1 |/p' "$base/results.md"
for recipe in "${recipes[@]}"; do
    name=${recipe%%|*}
    "$bin" experiment "$sweep/$name.toml" --report "$@" > /dev/null
    sed -n "s/^| grow |/| $name | grow |/p" "$sweep/$name/results.md"
done
