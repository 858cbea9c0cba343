"""Where a worker's CPU goes: each `perf record --call-graph dwarf` sample (`perf script -F
comm,ip,sym,dso` on stdin) is charged to the innermost frame of its stack that belongs to a
known part (the SDK, hyper, tokio, tracing, imgflow's consumer loop ...); kernel samples are
charged to the user frame that entered the kernel. `scripts/bench profile` runs it.

usage: perf script -i X.data -F comm,ip,sym,dso | perf_attribution.py [TITLE]"""
import re, sys, collections
BUCKETS = [
  ("tracing", r"^(tracing|tracing_core|tracing_subscriber)::|<tracing"),
  ("metrics", r"^(metrics|metrics_exporter_prometheus|metrics_util)::|<metrics"),
  ("serde/json", r"^(serde_json|serde|serde_core)::|<serde"),
  ("SigV4 signing", r"aws_sigv4|aws_runtime::auth|<aws_runtime::auth"),
  ("SDK serialize/deserialize", r"aws_sdk_\w+::protocol_serde|aws_smithy_json|aws_smithy_xml|aws_smithy_query|deser|ser_"),
  ("SDK orchestrator + interceptors", r"aws_smithy_runtime|aws_smithy_runtime_api|aws_runtime|aws_sdk_\w+|aws_smithy_types|aws_smithy_async|aws_smithy_http|aws_config|aws_types"),
  ("hyper / http client", r"hyper|h2::|http::|http_body|tower"),
  ("TLS / crypto", r"rustls|aws_lc|ring::"),
  ("imgflow consumer loop (receive, pace, heartbeat, deletes)", r"imgflow_runtime::consumer|imgflow_aws::sqs"),
  ("imgflow publisher (SNS batching)", r"imgflow_aws::sns"),
  ("imgflow handlers and adapters", r"imgflow_"),
  ("tokio runtime (scheduler, timers, I/O driver)", r"tokio::|mio::"),
  ("futures/async glue", r"futures_util|futures_core|core::future|<core::future"),
]
comp = [(n, re.compile(p)) for n, p in BUCKETS]
counts = collections.Counter(); total = 0
stack = []
def flush():
    global total
    if not stack: return
    total += 1
    leaf = stack[0]
    if leaf.endswith("[kernel.kallsyms]") or "[k]" in leaf:
        kind = "kernel"
    else:
        kind = None
    for sym in stack:
        for n, r in comp:
            if r.search(sym):
                counts[(n, "kernel" if kind else "user")] += 1
                return
    counts[("other (libc, std)", "kernel" if kind else "user")] += 1
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line.strip():
        flush(); stack = []; continue
    if line.startswith((" ", "\t")):
        parts = line.strip().split(" ", 1)
        if len(parts) == 2:
            sym, dso = parts[1].rsplit(" (", 1) if " (" in parts[1] else (parts[1], "")
            stack.append(sym + ("[kernel.kallsyms]" if "kernel.kallsyms" in dso else ""))
flush()
agg = collections.Counter()
kern = collections.Counter()
for (n, k), c in counts.items():
    agg[n] += c
    if k == "kernel": kern[n] += c
title = sys.argv[1] if len(sys.argv) > 1 else "worker"
print(f"| {title}: {total} samples | share | of which in the kernel |")
print("|---|---:|---:|")
for n, c in agg.most_common():
    print(f"| {n} | {100*c/total:.1f}% | {100*kern[n]/total:.1f}% |")
