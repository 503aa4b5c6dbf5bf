"""The inventory aggregation in Quix Streams, for `make bench` (issue 8): the same input
topic the Rust benchmark wrote (Avro InventoryMovement, Confluent wire format, keyed
`sku|source`), a tumbling event-time window per key (60 s, grace 10 s) summing the
quantities, `processing_guarantee="exactly-once"`, final results to an output topic.

Prints one JSON line: {"records": N, "seconds": S, "records_per_s": R}. The time runs from
the first record decoded to the last; the run stops once the input has been idle for
`--idle` seconds (the final commit is not counted, which favours Quix slightly). It
commits every `--commit-interval` seconds: the benchmark passes its own interval, so both
sides pay for the same number of transactions.
"""

import argparse
import io
import json
import struct
import sys
import tempfile
import time
import urllib.request

import fastavro
from quixstreams import Application
from quixstreams.models.serializers import Deserializer


class ConfluentAvro(Deserializer):
    """Confluent wire format (magic 0, schema id, Avro body) with schemas from the registry."""

    def __init__(self, registry: str, clock: dict):
        super().__init__()
        self.registry = registry.rstrip("/")
        self.schemas = {}
        self.clock = clock

    def schema(self, schema_id: int):
        if schema_id not in self.schemas:
            url = f"{self.registry}/schemas/ids/{schema_id}"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = json.load(response)["schema"]
            self.schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        return self.schemas[schema_id]

    def __call__(self, value: bytes, ctx):
        if self.clock["first"] is None:
            self.clock["first"] = time.monotonic()
        magic, schema_id = struct.unpack(">bI", value[:5])
        if magic != 0:
            raise ValueError(f"not Confluent wire format (magic byte {magic})")
        record = fastavro.schemaless_reader(io.BytesIO(value[5:]), self.schema(schema_id))
        self.clock["seen"] += 1
        self.clock["last"] = time.monotonic()
        return record


def event_time(value, headers, timestamp, kind) -> int:
    """The movement's `occurred_at` (timestamp-millis, which fastavro reads as a datetime)."""
    return int(value["envelope"]["occurred_at"].timestamp() * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--idle", type=float, default=5.0)
    # The Rust loop's commit interval, so both commit as often (Quix's default is 5 s).
    parser.add_argument("--commit-interval", type=float, default=5.0)
    args = parser.parse_args()

    clock = {"first": None, "last": None, "seen": 0}
    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=args.broker,
            consumer_group=f"bench-quix-{time.time_ns()}",
            auto_offset_reset="earliest",
            processing_guarantee="exactly-once",
            commit_interval=args.commit_interval,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        source = app.topic(
            args.topic,
            key_deserializer="str",
            value_deserializer=ConfluentAvro(args.registry, clock),
            timestamp_extractor=event_time,
        )
        output = app.topic(f"{args.topic}-quix-out", value_serializer="json")
        sdf = app.dataframe(source)
        # Quix keeps window state as JSON: the quantity (whole units here) as a number.
        sdf = sdf.apply(lambda m: float(m["quantity"]))
        sdf = (
            sdf.tumbling_window(duration_ms=60_000, grace_ms=10_000)
            .reduce(lambda total, q: total + q, lambda q: q)
            .final()
        )
        sdf.to_topic(output)
        app.run(timeout=args.idle)

    if clock["first"] is None or clock["seen"] < args.records:
        print(f"quix read {clock['seen']} of {args.records} records", file=sys.stderr)
        return 1
    seconds = clock["last"] - clock["first"]
    print(json.dumps({
        "records": clock["seen"],
        "seconds": round(seconds, 3),
        "records_per_s": round(clock["seen"] / seconds, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
