"""moto's server, with DynamoDB requests taken one at a time.

moto serves requests on threads and does not lock its DynamoDB backend, so two conditional
writes to one item can interleave: each checks its condition against the item as it was,
and both write. On AWS a conditional write is atomic, and imgflow's effectively-once results
rest on that (ingest may not turn a `labeled` item back to `accepted`; one label claim wins).
Serializing DynamoDB calls, which are quick in moto, makes the emulator keep that promise;
everything else (SQS long polls above all) stays concurrent.

Its SQS receive is not atomic either: it checks that a message is visible, then marks it
received, so two receives on two threads can both take one message (seen: two label processes
labelling one image, both at receive count 2, which SQS never does within a visibility
timeout). Receives scan one at a time here; a long poll's wait between scans lets others in.
Deletes, which rebuild the message list from a copy, take the same lock and the queue's.

With IMGFLOW_EMULATOR_TRUST_SIGNATURES=1 (the least-privilege test sets it, together with IAM
enforcement) moto does not recompute request signatures: it gets them wrong for form-encoded
bodies it has already parsed (SNS PublishBatch with spaces in a message answers
SignatureDoesNotMatch). Access keys must still exist and policies are still enforced; signing
is the AWS SDK's business, not imgflow's.

It is served by waitress, not werkzeug's development server: werkzeug answers every request
with `Connection: close`, so each AWS call paid a TCP connect on both sides and the emulator a
new thread. Real AWS keeps connections alive, and so does waitress; the benchmark's workers
spend their CPU as they would on AWS. IMGFLOW_EMULATOR_SERVER=werkzeug brings the old server
back (for comparison). waitress' pool has IMGFLOW_EMULATOR_THREADS threads (default 128):
every SQS long poll holds one for up to 20 s.

werkzeug's line per request is off unless IMGFLOW_EMULATOR_REQUEST_LOG=1: formatting and
writing it was 15% of the emulator's CPU in a pipeline benchmark (py-spy), and the benchmarks
and tests are bound by that CPU.

Usage: moto_server.py HOST PORT
"""

import logging
import os

import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

DYNAMODB = threading.Lock()
SQS_RECEIVE = threading.Lock()


def atomic_sqs_receives() -> None:
    from moto.sqs.models import Queue, SQSBackend

    receive, wait = SQSBackend.receive_message, Queue.wait_for_messages

    def locked_receive(self, *args, **kwargs):
        with SQS_RECEIVE:
            return receive(self, *args, **kwargs)

    def wait_unlocked(self, timeout):
        # Only called from receive_message, under the lock.
        SQS_RECEIVE.release()
        try:
            wait(self, timeout)
        finally:
            SQS_RECEIVE.acquire()

    # A delete rebuilds the queue's message list from a copy: a message sent, or moved to the
    # dead-letter queue by a receive, while it copies would be lost or come back.
    delete = Queue.delete_message

    def locked_delete(self, receipt_handle):
        with SQS_RECEIVE, self._messages_lock:
            return delete(self, receipt_handle)

    SQSBackend.receive_message = locked_receive
    Queue.wait_for_messages = wait_unlocked
    Queue.delete_message = locked_delete


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    if os.environ.get("IMGFLOW_EMULATOR_TRUST_SIGNATURES") == "1":
        from moto.iam.access_control import IAMRequestBase

        IAMRequestBase.check_signature = lambda self: None
    if os.environ.get("IMGFLOW_EMULATOR_REQUEST_LOG") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    atomic_sqs_receives()
    moto = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with DYNAMODB:
                # The whole response is produced under the lock.
                return list(moto(environ, start_response))
        return moto(environ, start_response)

    if os.environ.get("IMGFLOW_EMULATOR_SERVER") == "werkzeug":
        run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
        return
    from waitress import serve

    serve(
        app,
        host=host,
        port=port,
        threads=int(os.environ.get("IMGFLOW_EMULATOR_THREADS", "128")),
        connection_limit=2000,
        channel_timeout=300,
        ident="moto",
        _quiet=True,
    )


if __name__ == "__main__":
    main()
