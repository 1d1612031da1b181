#!/bin/bash
# npuc verify on every exported model (benchmarks/export_models.py) x exporter x chip and
# precision: one line each with the exit code, time, the worst output's SQNR against
# onnxruntime and whether the program is bit-identical to its IR.
#   bash benchmarks/verify_matrix.sh [MODEL...]
cd "$(dirname "$0")/models"
models=${*:-"resnet50 mobilenetv2 bert-base gpt2 vit-base"}
printf "%-12s %-12s %-16s %-5s %4s %6s %9s %s\n" model exporter chip prec exit secs "SQNR dB" "program vs IR"
for m in $models; do
 for e in torchscript dynamo; do
  [ -f "$m-$e.onnx" ] || continue
  for cell in warboy-2pe:int8 rngd:bf16 rngd:fp8 atom:fp16 atom:int8 x220-enterprise:int8; do
   t=${cell%%:*}; p=${cell##*:}
   start=$(date +%s.%N)
   out=$(timeout 1800 npuc verify "$m-$e.onnx" --target "$t" --quantize "$p" \
         --calibration random:8 --json 2>/dev/null)
   code=$?
   end=$(date +%s.%N)
   summary=$(echo "$out" | python -c '
import json, sys
try:
    r = json.load(sys.stdin)
except Exception:
    print("- error"); sys.exit()
rows = r["outputs"].values()
print("%.2f %s" % (min(m["sqnr_db"] for m in rows),
      "identical" if all(m["program_vs_ir_identical"] for m in rows) else "DIFFERS"))')
   printf "%-12s %-12s %-16s %-5s %4s %6.0f %9s %s\n" $m $e $t $p $code \
          $(echo "$end-$start" | bc) $summary
  done
 done
done
