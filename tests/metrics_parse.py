"""Parses an OpenMetrics exposition (stdin) with prometheus_client's parser
and prints every sample as JSON: {"name{label=value,...}": value}. Fails
(non-zero exit) when the text does not parse. Used by tests/metrics.rs."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
