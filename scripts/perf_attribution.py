"""Where a worker's CPU goes: each `perf record --call-graph dwarf` sample (`perf script -F
comm,ip,sym,dso` on stdin) is charged to the innermost frame of its stack that belongs to a
known part (the SDK, hyper, tokio, tracing, imgflow's consumer loop ...); kernel samples are
charged to the user frame that entered the kernel. `scripts/bench profile` runs it.

usage: perf script -i X.data -F comm,ip,sym,dso | perf_attribution.py [TITLE]"""
import re, sys, collections
BUCKETS = [
  ("tracing", r"^(tracing|tracing_core|tracing_subscriber)::"),
  ("metrics", r"^(metrics|metrics_exporter_prometheus|metrics_util)::"),
  ("serde/json", r"^(serde_json|serde|serde_core)::"),
  ("SigV4 signing and hashing", r"^(aws_sigv4|aws_lc_rs|aws_lc_sys|ring|sha2|hmac)::|^aws_runtime::auth"),
  ("SDK serialize/deserialize", r"^(aws_smithy_json|aws_smithy_xml|aws_smithy_query)::|^aws_sdk_\w+::protocol_serde"),
  ("SDK: config bag and runtime components (per operation)", r"^aws_smithy_types::(config_bag|type_erasure)|^aws_smithy_runtime_api::client::runtime_components|^aws_smithy_runtime_api::client::runtime_plugin"),
  ("SDK: endpoint resolution", r"^aws_\w+::.*endpoint"),
  ("SDK: timeouts, sleeps, stalled-stream checks", r"^aws_smithy_async::|^aws_\w+::.*(minimum_throughput|timeout)"),
  ("SDK: interceptors (user agent, retries, invocation id, call counting)", r"^aws_runtime::|^aws_smithy_runtime::client::(retries|interceptors)|^imgflow_aws::interceptor"),
  ("SDK: HTTP adapter and bodies", r"^aws_smithy_http_client::|^aws_smithy_types::body|^aws_smithy_runtime::client::http|^aws_smithy_http::"),
  ("SDK: orchestrator and operation setup (the rest)", r"^(aws_smithy_runtime|aws_smithy_runtime_api|aws_sdk_\w+|aws_smithy_types|aws_config|aws_types)::"),
  ("hyper / http client", r"^(hyper|hyper_util|h2|http|http_body|http_body_util|tower)::"),
  ("imgflow consumer loop (receive, pace, heartbeat, deletes)", r"^imgflow_runtime::consumer|^imgflow_aws::sqs"),
  ("imgflow publisher (SNS batching)", r"^imgflow_aws::sns"),
  ("imgflow handlers and adapters", r"^imgflow_"),
  ("tokio runtime (scheduler, timers, I/O driver)", r"^(tokio|mio)::"),
  ("futures/async glue", r"^(futures_util|futures_core)::|^core::future"),
]
comp = [(n, re.compile(p)) for n, p in BUCKETS]


def path_of(sym):
    """The function's own path: `<T as Trait>::f` gives T's, generic arguments dropped (they
    name other crates' types, which say nothing about where the time is spent)."""
    if sym.startswith("<"):
        depth, i = 0, 0
        for i, c in enumerate(sym):
            depth += c == "<"
            depth -= c == ">"
            if depth == 1 and sym.startswith(" as ", i):
                break
            if depth == 0:
                break
        sym = sym[1:i]
    out, depth = [], 0
    for c in sym:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out).strip()


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
        path = path_of(sym)
        for n, r in comp:
            if r.search(path):
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
