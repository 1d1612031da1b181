#!/bin/bash
# npuc verify on every exported model (benchmarks/export_models.py) x exporter x chip:
# one line each with the exit code, time and per-output SQNR.
cd "$(dirname "$0")/models"
for m in resnet50 mobilenetv2 bert-base gpt2 vit-base; do
 for e in torchscript dynamo; do
  for t in warboy-2pe rngd atom x220-enterprise; do
   start=$(date +%s.%N)
   out=$(timeout 900 npuc verify $m-$e.onnx --target $t --calibration random:8 2>&1)
   code=$?
   end=$(date +%s.%N)
   summary=$(echo "$out" | grep -E "SQNR|verify:|error" | tr '\n' ' ' | cut -c1-400)
   printf "%s %s %s exit=%s %.0fs %s\n" $m $e $t $code $(echo "$end-$start"|bc) "$summary"
  done
 done
done
