"""The tutorial's three Lambda handlers (../shared/seed/step-functions-image-workflow.txt), run
in-process against the emulator on the pipeline benchmark's photos, so `scripts/bench pipeline`
can put their CPU per image next to imgflow's workers.

Each handler is the published code with its constants made parameters: upload (base64 body ->
S3 PutObject), detect (Rekognition DetectLabels, MaxLabels=10), store (floats to Decimal,
DynamoDB PutItem). Two runs: as published (boto3 clients created inside every invocation, as a
cold-ish Lambda does), and with the clients created once (a warm Lambda's best case). CPU is
this process's (user + system, `time.process_time`), so the emulator's own work is excluded,
as it is for imgflow's workers.

The published ids are the upload time to the second: images uploaded within one second
overwrite each other's object and item. That is kept (it is the design being measured); the
report counts how many distinct items were left.

usage: bench_tutorial.py OUT.json IMAGES PHOTO...
"""

import base64
import json
import os
import sys
import time
from datetime import datetime
from decimal import Decimal

import boto3

BUCKET = "bench-tutorial-images"
TABLE = "bench-tutorial-image-data"


def convert_floats_to_decimal(obj):
    if isinstance(obj, float):
        return Decimal(str(obj))
    if isinstance(obj, dict):
        return {k: convert_floats_to_decimal(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [convert_floats_to_decimal(v) for v in obj]
    return obj


def upload(event, clients):
    image_data = base64.b64decode(event["base64Image"])
    s3 = clients("s3")
    date_time_string = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    object_key = f"{date_time_string}.png"
    s3.put_object(Bucket=BUCKET, Key=object_key, Body=image_data)
    return {"statusCode": 200, "body": {"bucket_name": BUCKET, "object_key": object_key}}


def detect(event, clients):
    clients("s3")  # created and unused, as published
    rekognition = clients("rekognition")
    body = event["body"]
    response = rekognition.detect_labels(
        Image={"S3Object": {"Bucket": body["bucket_name"], "Name": body["object_key"]}},
        MaxLabels=10,
    )
    return {"statusCode": 200, "body": response}


def store(event, clients):
    table = clients("dynamodb-resource").Table(TABLE)
    rekognition_data = convert_floats_to_decimal(event["body"])
    date_time_string = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    table.put_item(Item={"id": date_time_string, "RekognitionResponse": rekognition_data})
    return {"statusCode": 200, "body": "Data stored in DynamoDB successfully"}


def fresh_clients(name):
    return boto3.resource("dynamodb") if name == "dynamodb-resource" else boto3.client(name)


def cached(factory):
    made = {}

    def clients(name):
        if name not in made:
            made[name] = factory(name)
        return made[name]

    return clients


def run(bodies, clients_for_invocation):
    """CPU seconds per handler over all `bodies`; `clients_for_invocation()` gives each
    invocation its client source."""
    cpu = {"upload": 0.0, "detect": 0.0, "store": 0.0}
    for body in bodies:
        event = {"base64Image": base64.b64encode(body).decode()}
        for name, handler in (("upload", upload), ("detect", detect), ("store", store)):
            started = time.process_time()
            event = handler(event, clients_for_invocation())
            cpu[name] += time.process_time() - started
    return cpu


def main(out, images, photos):
    bodies = [open(p, "rb").read() for p in photos]
    bodies = [bodies[i % len(bodies)] for i in range(images)]
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    once = cached(fresh_clients)
    runs = {}
    for name, source in (("as_published", lambda: fresh_clients), ("clients_once", lambda: once)):
        started = time.monotonic()
        cpu = run(bodies, source)
        runs[name] = {
            "cpu_ms_per_image": {k: 1000 * v / images for k, v in cpu.items()},
            "cpu_ms_per_image_total": 1000 * sum(cpu.values()) / images,
            "wall_seconds": time.monotonic() - started,
        }
    items = dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"]
    report = {"images": images, "distinct_items_left": items, "runs": runs}
    json.dump(report, open(out, "w"), indent=1)
    for name, r in runs.items():
        per = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_ms_per_image"].items())
        print(f"tutorial handlers, {name}: {r['cpu_ms_per_image_total']:.1f} ms CPU per image ({per})",
              file=sys.stderr)
    print(f"tutorial handlers: {items} distinct items left for {2 * images} stored "
          "(ids are the time to the second)", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
