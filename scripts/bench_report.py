"""Turns the pipeline benchmark's JSON reports into target/bench/pipeline.md and pipeline.png.

usage: bench_report.py OUT_DIR REPORT.json...
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * q))] if values else float("nan")


def calls(stage, service, operations=None):
    return sum(v for k, v in stage["aws_calls"].items()
               if f'service="{service}"' in k
               and (operations is None or any(f'operation="{o}"' in k for o in operations)))


def summarize(report):
    n = report["completed"] or 1
    latencies = [t["latency_ms"] for t in report["timeline"]]
    first = min(t["uploaded_ms"] for t in report["timeline"])
    last = max(t["stored_ms"] for t in report["timeline"])
    rows = []
    for name, stage in report["stages"].items():
        rows.append({
            "stage": name,
            "sqs_sns_per_image": (calls(stage, "SQS") + calls(stage, "SNS")) / n,
            "sqs_per_image": calls(stage, "SQS") / n,
            "sns_per_image": calls(stage, "SNS") / n,
            "dynamodb_writes_per_image": calls(stage, "DynamoDB", ["PutItem", "UpdateItem"]) / n,
            "dynamodb_reads_per_image": calls(stage, "DynamoDB", ["GetItem"]) / n,
            "s3_per_image": calls(stage, "S3", ["GetObject", "HeadObject"]) / n,
            "s3_writes_per_image": calls(stage, "S3", ["PutObject", "DeleteObject"]) / n,
            "dynamodb_per_image": calls(stage, "DynamoDB") / n,
            "detector_per_image": stage["detector_calls"] / n,
            "cpu_ms_per_image": 1000 * stage["cpu_seconds"] / n,
            "handler_ms_mean": 1000 * stage.get("handler_seconds", 0) / max(stage.get("handled", 0), 1),
            "idle_rss_mb": stage["idle_rss_kb"] / 1024,
            "peak_rss_mb": stage["peak_rss_kb"] / 1024,
        })
    return {
        "name": f'{report["detector"]} detector, {report["mode"]}'
                + (f' {report["rate_per_sec"]:g}/s' if report["rate_per_sec"] else "")
                # The default window (IMGFLOW_RECEIVE_WINDOW_MS=50) goes unnamed.
                + (f', receive window {report.get("receive_window_ms", 0)} ms'
                   if report.get("receive_window_ms", 0) != 50 else ""),
        "completed": report["completed"],
        "images": report["images"],
        "rate": report["rate_per_sec"],
        "throughput": report["completed"] / ((last - first) / 1000),
        "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95), "p99": percentile(latencies, 0.99),
        "mean": statistics.mean(latencies) if latencies else float("nan"),
        "detector_ms": report.get("fixed_latency_ms") if report["detector"] == "fixed" else None,
        "emulator_cpu": (report.get("emulator") or {}).get("cpu_seconds"),
        "worker_cpu": sum(s["cpu_seconds"] for s in report["stages"].values()),
        "stages": rows,
    }


def main(out, paths):
    reports = [json.load(open(p)) for p in paths]
    summaries = [summarize(r) for r in reports]
    lines = ["# Pipeline benchmark (local emulator)", ""]
    lines += ["| run | images | images/s | p50 ms | p95 ms | p99 ms | worker CPU s | emulator CPU s | limited by |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in summaries:
        # The emulator runs single-threaded Python: when it burns more CPU than every worker
        # together, the run measured the emulator (moto scans whole queues on every call).
        if s["rate"] and s["throughput"] >= 0.95 * s["rate"]:
            limit = "offered load (kept up)"
        elif (s["emulator_cpu"] or 0) > s["worker_cpu"]:
            limit = "emulator"
        else:
            limit = "imgflow"
        lines.append(f'| {s["name"]} | {s["completed"]}/{s["images"]} | {s["throughput"]:.1f} | {s["p50"]:.0f} | '
                     f'{s["p95"]:.0f} | {s["p99"]:.0f} | {s["worker_cpu"]:.1f} | {s["emulator_cpu"] or 0:.1f} | {limit} |')
    # Where an image's time goes on its way to `stored` (means, so the parts add up): imgflow's
    # own CPU in the three stages on the path, the fixed detector's latency, the rest of the
    # handlers' time (waiting for AWS answers, here the emulator's), and the time between
    # stages (S3 event and SNS delivery, queue waits, receive gathering).
    path = ("ingest", "label", "store")
    lines += ["", "Where the time goes on the way to `stored` (mean ms per image; ingest + label + store):", "",
              "| run | end to end | in handlers | of which imgflow CPU | of which detector | of which waiting on AWS | between stages |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        by_stage = {r["stage"]: r for r in s["stages"]}
        handlers = sum(by_stage[p]["handler_ms_mean"] for p in path if p in by_stage)
        cpu = sum(by_stage[p]["cpu_ms_per_image"] for p in path if p in by_stage)
        detector = s["detector_ms"] or 0
        s["where"] = {"end_to_end": s["mean"], "handlers": handlers, "cpu": cpu,
                      "detector": s["detector_ms"], "aws": handlers - cpu - detector,
                      "between": s["mean"] - handlers}
        detector_cell = f'{detector:.0f}' if s["detector_ms"] else "(in CPU)"
        lines.append(f'| {s["name"]} | {s["mean"]:.0f} | {handlers:.0f} | {cpu:.1f} | {detector_cell} | '
                     f'{handlers - cpu - detector:.0f} | {s["mean"] - handlers:.0f} |')
    # The tutorial's handlers, run by scripts/bench_tutorial.py on the same photos and emulator.
    tutorial_path = f"{out}/tutorial.json"
    if os.path.exists(tutorial_path) and summaries:
        tutorial = json.load(open(tutorial_path))
        steady = summaries[0]
        imgflow = {r["stage"]: r["cpu_ms_per_image"] for r in steady["stages"]}
        path_cpu = sum(imgflow.get(p, 0) for p in path)
        lines += ["", f'CPU per image against the tutorial\'s three handlers ({tutorial["images"]} images, '
                      "same photos and emulator; the emulator's CPU excluded from both):", "",
                  "| design | upload / ingest ms | detect / label ms | store ms | total ms |",
                  "|---|---:|---:|---:|---:|",
                  f'| imgflow ({steady["name"]}) | {imgflow.get("ingest", 0):.2f} | {imgflow.get("label", 0):.2f} | '
                  f'{imgflow.get("store", 0):.2f} | {path_cpu:.2f} |']
        for name, r in tutorial["runs"].items():
            c = r["cpu_ms_per_image"]
            lines.append(f'| tutorial handlers, {name.replace("_", " ")} | {c["upload"]:.2f} | {c["detect"]:.2f} | '
                         f'{c["store"]:.2f} | {r["cpu_ms_per_image_total"]:.2f} |')
    for s in summaries:
        lines += ["", f'## {s["name"]}: per image, per stage', "",
                  "| stage | SQS+SNS calls | S3 calls | DynamoDB calls | detector calls | CPU ms | handler ms (mean) | idle RSS MB | peak RSS MB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in s["stages"]:
            lines.append(f'| {r["stage"]} | {r["sqs_sns_per_image"]:.2f} | {r["s3_per_image"]:.2f} | '
                         f'{r["dynamodb_per_image"]:.2f} | {r["detector_per_image"]:.2f} | {r["cpu_ms_per_image"]:.2f} | '
                         f'{r["handler_ms_mean"]:.0f} | '
                         f'{r["idle_rss_mb"]:.0f} | {r["peak_rss_mb"]:.0f} |')
    text = "\n".join(lines) + "\n"
    open(f"{out}/pipeline.md", "w").write(text)
    json.dump(summaries, open(f"{out}/pipeline-summary.json", "w"), indent=1)

    fig, axes = plt.subplots(len(reports), 2, figsize=(12, 3.2 * len(reports)), squeeze=False)
    for row, (report, s) in enumerate(zip(reports, summaries)):
        done = sorted(t["stored_ms"] / 1000 for t in report["timeline"])
        width = 1.0
        buckets = {}
        for d in done:
            buckets[int(d // width)] = buckets.get(int(d // width), 0) + 1
        xs = sorted(buckets)
        axes[row][0].plot([x * width for x in xs], [buckets[x] / width for x in xs])
        axes[row][0].set_title(f'{s["name"]}: images stored per second', fontsize=9)
        axes[row][0].set_xlabel("seconds since the first upload")
        timeline = sorted(report["timeline"], key=lambda t: t["uploaded_ms"])
        axes[row][1].scatter([t["uploaded_ms"] / 1000 for t in timeline], [t["latency_ms"] for t in timeline], s=4)
        axes[row][1].set_title(f'{s["name"]}: upload → stored latency (ms)', fontsize=9)
        axes[row][1].set_xlabel("upload time, seconds since the first upload")
    fig.tight_layout()
    fig.savefig(f"{out}/pipeline.png", dpi=90)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
