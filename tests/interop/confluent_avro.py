#!/usr/bin/env python3
"""An independent schema-registry consumer and producer, for interop tests.

decode REGISTRY_URL   reads hex Confluent-framed records (one per line) on stdin, fetches each
                      writer schema from the registry over HTTP, decodes with fastavro and
                      prints one JSON object per record (decimals as strings, bytes as hex).
encode REGISTRY_URL SUBJECT
                      reads one JSON object on stdin, takes the latest schema of SUBJECT from
                      the registry, encodes it with fastavro (decimals from strings, written
                      with fastavro's minimal bytes) and prints the Confluent-framed hex.
"""
import decimal
import io
import json
import struct
import sys
import urllib.request

import fastavro


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def to_json(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if hasattr(value, "isoformat"):
        return int(value.timestamp() * 1000)
    return value


def from_json(value, schema):
    """Turns decimal strings back into Decimals where the schema says decimal."""
    if isinstance(schema, dict) and schema.get("logicalType") == "decimal" and isinstance(value, str):
        return decimal.Decimal(value)
    if isinstance(schema, dict) and schema.get("type") == "record" and isinstance(value, dict):
        return {f["name"]: from_json(value.get(f["name"]), f["type"]) for f in schema["fields"]}
    if isinstance(schema, dict) and schema.get("type") == "array" and isinstance(value, list):
        return [from_json(v, schema["items"]) for v in value]
    if isinstance(schema, list):
        for branch in schema:
            if branch == "null" and value is None:
                return None
        for branch in schema:
            if branch != "null":
                return from_json(value, branch)
    return value


def decode(registry):
    schemas = {}
    for line in sys.stdin:
        raw = bytes.fromhex(line.strip())
        magic, schema_id = struct.unpack(">bI", raw[:5])
        if magic != 0:
            raise SystemExit(f"magic byte {magic}")
        if schema_id not in schemas:
            text = get_json(f"{registry}/schemas/ids/{schema_id}")["schema"]
            schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        record = fastavro.schemaless_reader(io.BytesIO(raw[5:]), schemas[schema_id])
        print(json.dumps({"schema_id": schema_id, "record": to_json(record)}))


def encode(registry, subject):
    latest = get_json(f"{registry}/subjects/{subject}/versions/latest")
    schema_json = json.loads(latest["schema"])
    record = from_json(json.load(sys.stdin), _inline_named(schema_json))
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, latest["id"]))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema_json), record)
    print(out.getvalue().hex())


def _inline_named(schema, named=None):
    """Resolves references to named types so from_json can walk the schema."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return named.get(schema, named.get(schema.rsplit(".", 1)[-1], schema))
    if isinstance(schema, list):
        return [_inline_named(s, named) for s in schema]
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            full = schema["name"] if "." in schema["name"] else f'{schema.get("namespace", "bridge.events")}.{schema["name"]}'
            named[full] = schema
            named[schema["name"]] = schema
        out = dict(schema)
        if "fields" in out:
            out["fields"] = [dict(f, type=_inline_named(f["type"], named)) for f in out["fields"]]
        if "items" in out:
            out["items"] = _inline_named(out["items"], named)
        if isinstance(out.get("type"), (dict, list)):
            out["type"] = _inline_named(out["type"], named)
        return out
    return schema


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "decode":
        decode(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
