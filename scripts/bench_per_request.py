"""Issue 29's side-by-side, from one `scripts/bench per-request` run: imgflow's three workers
(ingest, label, store) before and after, the tutorial's handlers, and the SDK's floor, all
on this machine in the same run. Ratios are what compare across machines, not times.

usage: bench_per_request.py OUT.md TUTORIAL.json FLOOR.txt NAME=RUN.json...
"""

import json
import re
import sys

STAGES = ["ingest", "label", "store"]
# Dollars per million requests (us-east-1 list prices): S3 GET/HEAD $0.40, PUT $5; DynamoDB
# on demand $0.125 per million read units, $0.625 per million write units (a BatchWriteItem
# of n items is n units); SQS $0.40; SNS publishes $0.50 (per 64 KB chunk).
PRICE = {
    ("S3", "GetObject"): 0.40, ("S3", "HeadObject"): 0.40, ("S3", "PutObject"): 5.0,
    ("DynamoDB", "GetItem"): 0.125, ("DynamoDB", "Query"): 0.125,
    ("DynamoDB", "UpdateItem"): 0.625, ("DynamoDB", "PutItem"): 0.625,
    ("DynamoDB", "BatchWriteItem"): 0.625 * 10,  # the label index: about ten entries a request
    ("SQS", "ReceiveMessage"): 0.40, ("SQS", "DeleteMessageBatch"): 0.40,
    ("SQS", "ChangeMessageVisibilityBatch"): 0.40, ("SNS", "PublishBatch"): 0.50,
}


def calls(stage):
    out = {}
    for labels, n in stage["aws_calls"].items():
        service = re.search(r'service="([^"]+)"', labels).group(1)
        operation = re.search(r'operation="([^"]+)"', labels).group(1)
        out[(service, operation)] = n
    return out


def summary(run):
    n = run["completed"]
    per_stage = {}
    for name in STAGES:
        stage = run["stages"][name]
        c = calls(stage)
        per_stage[name] = {
            "cpu_ms": 1000 * stage["cpu_seconds"] / n,
            "requests": sum(c.values()) / n,
            "by_operation": {k: v / n for k, v in c.items()},
        }
    cpu = sum(s["cpu_ms"] for s in per_stage.values())
    requests = sum(s["requests"] for s in per_stage.values())
    lat = sorted(t["latency_ms"] for t in run["timeline"])
    return {"n": n, "stages": per_stage, "cpu_ms": cpu, "requests": requests,
            "p50_ms": lat[len(lat) // 2] if lat else None}


def main(out, tutorial_path, floor_path, runs):
    tutorial = json.load(open(tutorial_path))["runs"]
    warm = tutorial["clients_once"]["cpu_ms_per_image_total"]
    published = tutorial["as_published"]["cpu_ms_per_image_total"]
    floor_us = float(re.search(r"([\d.]+) µs CPU per GetItem", open(floor_path).read()).group(1))
    rows = {name: summary(json.load(open(path))) for name, path in runs}
    lines = [
        "| run | CPU ms per image (ingest / label / store) | total | × warm handlers | "
        "AWS requests per image (ingest / label / store) | total | CPU µs per request | × SDK floor |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, r in rows.items():
        s = r["stages"]
        per_request = 1000 * r["cpu_ms"] / r["requests"]
        lines.append(
            f"| imgflow, {name} ({r['n']} images) | "
            + " / ".join(f"{s[x]['cpu_ms']:.2f}" for x in STAGES)
            + f" | {r['cpu_ms']:.2f} | {r['cpu_ms'] / warm:.2f} | "
            + " / ".join(f"{s[x]['requests']:.2f}" for x in STAGES)
            + f" | {r['requests']:.2f} | {per_request:.0f} | {per_request / floor_us:.1f} |"
        )
    lines.append(f"| tutorial handlers, clients made once (a warm Lambda) | | {warm:.2f} | 1.00 | | 3 | "
                 f"{1000 * warm / 3:.0f} | {1000 * warm / 3 / floor_us:.1f} |")
    lines.append(f"| tutorial handlers, as published | | {published:.2f} | {published / warm:.2f} | | 3 | "
                 f"{1000 * published / 3:.0f} | |")
    lines += ["", f"SDK floor (`request_cost`, same run): {floor_us:.0f} µs of CPU per DynamoDB GetItem.", ""]
    for name, r in rows.items():
        lines += [f"Requests per image and what they cost, {name}:", "",
                  "| stage | request | per image | $ per million images |", "|---|---|---:|---:|"]
        total = 0.0
        for stage in STAGES:
            for (service, op), n in sorted(r["stages"][stage]["by_operation"].items()):
                dollars = n * PRICE.get((service, op), 0.0)
                total += dollars
                lines.append(f"| {stage} | {service} {op} | {n:.2f} | {dollars:.2f} |")
        lines += [f"| all | | {r['requests']:.2f} | {total:.2f} |", ""]
    report = "\n".join(lines) + "\n"
    open(out, "w").write(report)
    print(report)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [a.split("=", 1) for a in sys.argv[4:]])
