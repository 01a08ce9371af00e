#!/usr/bin/python3
"""Checks fieldsync aggregate exports with standard parsers.

  check_exports.py CSV_FILE DHIS2_JSON_FILE SCHEMA_FILE MIN_CELL_COUNT

The CSV must parse with Python's csv module into the documented columns,
round-trip (writing the parsed rows back gives the same bytes), carry a
count on every published line and none on a suppressed one, and publish no
count from 1 to k-1. The DHIS2 document must validate against the
dataValueSets JSON schema and carry no value from 1 to k-1. Prints what it
checked; exits non-zero naming the first problem.
"""
import csv
import io
import json
import sys

import jsonschema

COLUMNS = ["metric", "period", "dimension_1", "value_1", "dimension_2", "value_2",
           "dimension_3", "value_3", "dimension_4", "value_4", "count", "status"]


def fail(message):
    print("FAIL", message)
    sys.exit(1)


def main():
    csv_path, json_path, schema_path, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(csv_path, newline="", encoding="utf-8") as f:
        raw = f.read()
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    if not rows or rows[0] != COLUMNS:
        fail("CSV header is %r" % (rows[0] if rows else None))
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    if out.getvalue() != raw:
        fail("CSV does not round-trip through the csv module")
    published = suppressed = 0
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS):
            fail("CSV line %d has %d fields" % (n, len(row)))
        record = dict(zip(COLUMNS, row))
        if record["status"] == "suppressed":
            suppressed += 1
            if record["count"] != "":
                fail("CSV line %d: a suppressed cell carries a count" % n)
        elif record["status"] == "published":
            published += 1
            count = int(record["count"])
            if 1 <= count < k:
                fail("CSV line %d publishes a count of %d" % (n, count))
        else:
            fail("CSV line %d: status %r" % (n, record["status"]))
    with open(json_path, encoding="utf-8") as f:
        document = json.load(f)
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.validate(document, schema)
    for value in document["dataValues"]:
        if 1 <= int(value["value"]) < k:
            fail("DHIS2 value %s published" % value["value"])
    print("csv: %d lines (%d published, %d suppressed) round-trip; dhis2: %d data values valid"
          % (len(rows) - 1, published, suppressed, len(document["dataValues"])))


if __name__ == "__main__":
    main()
